"""Pre-flight checks (``-m quick`` and ``-m validate``): will the machine let the configs run at all?

Each check is its own test with a message that says what to change (:mod:`ssv2_fixtures.stress.preflight`);
a failed check is that one message (``pytrace=False``: no traceback, no fixture values).
"""

from __future__ import annotations

import pytest

from ssv2_fixtures.stress import preflight

pytestmark = [pytest.mark.quick, pytest.mark.validate]


def _holds(problem: str | None) -> None:
    if problem is not None:
        pytest.fail(problem, pytrace=False)


def test_shm_fits_ladder(ssv2_session, ssv2_dataset):
    # a user's pipeline: bytes per item measured by the session's probe (ssv2_dataset ran it)
    problem = preflight.shm(ssv2_session, ssv2_dataset[0])
    _holds(problem)


def test_tmpdir_writable_with_space(ssv2_session):
    problem = preflight.tmpdir(ssv2_session)
    _holds(problem)


def test_nofile_enough_for_file_descriptor(ssv2_session):
    problem = preflight.nofile(ssv2_session)
    if problem == preflight.NOT_APPLICABLE:
        pytest.skip(problem)
    _holds(problem)


def test_decoder_decodes_dataset_codec(ssv2_dataset):
    problem = preflight.decoder(*ssv2_dataset)
    _holds(problem)
