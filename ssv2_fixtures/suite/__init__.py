"""The product's stress tests, shipped inside the package so that an installed copy runs them from any
directory: ``pytest --pyargs ssv2_fixtures.suite -m quick`` (or sustained, limits, validate, distributed, tune),
with the caller's own pytest configuration and ``--dataset-factory``. This repository's ``testpaths`` lists
this folder too, so ``pytest -m quick`` here selects the same tests.

A package: its module names (``ssv2_fixtures.suite.test_distributed``) cannot clash with a user's test
modules or with tests/unit's (both have a test_distributed.py). The modules only call the stress layer and
assert; like the plugin they sit on top of every other layer.
"""
