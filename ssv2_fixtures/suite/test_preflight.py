"""Pre-flight checks (``-m quick`` and ``-m validate``): will the machine let the configs run at all?

Each check is its own test with a message that says what to change (:mod:`ssv2_fixtures.stress.preflight`).
"""

from __future__ import annotations

import pytest

from ssv2_fixtures.stress import preflight

pytestmark = [pytest.mark.quick, pytest.mark.validate]


def test_shm_fits_ladder(ssv2_session, ssv2_dataset):
    # a user's pipeline: bytes per item measured by the session's probe (ssv2_dataset ran it)
    problem = preflight.shm(ssv2_session, ssv2_dataset[0])
    assert problem is None, problem


def test_tmpdir_writable_with_space(ssv2_session):
    problem = preflight.tmpdir(ssv2_session)
    assert problem is None, problem


def test_nofile_enough_for_file_descriptor(ssv2_session):
    problem = preflight.nofile(ssv2_session)
    if problem == preflight.NOT_APPLICABLE:
        pytest.skip(problem)
    assert problem is None, problem


def test_decoder_decodes_dataset_codec(ssv2_dataset):
    problem = preflight.decoder(*ssv2_dataset)
    assert problem is None, problem
