"""``-m distributed``: every config of the matrix in every rank of a torchrun job (``--nproc-per-node``
ranks on this node, each with its own DataLoader workers; ``--nnodes/--node-rank/--rdzv-endpoint`` for
several nodes, each running this same command).

Each rank loads through a ``DistributedSampler`` over a dataset of
:func:`~ssv2_fixtures.stress.plans.epoch_limit` items, so every run crosses epoch boundaries. A config
passes when every rank finished ``--batches`` batches, each epoch's indices follow DistributedSampler's
rule (disjoint ranks, the whole dataset in a complete epoch but for the padding/drop rule), and the
node totals add up (:func:`~ssv2_fixtures.stress.distributed.node_totals`). When a config fails with N
ranks on one node (and no drill was injected), the same config runs with 1 rank too, so the report can
say whether the rank count is the cause (ranks share /dev/shm, memory, cores and fds).
"""

from __future__ import annotations

import pytest

from ssv2_fixtures.stress import distributed

pytestmark = pytest.mark.distributed


def test_distributed(distributed_config, stress):
    config, requested = distributed_config
    out = distributed.run(stress, config, requested)
    if out.failure:
        pytest.fail(out.failure, pytrace=False)
    print(out.summary)
