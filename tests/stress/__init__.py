"""The product's stress tests (a package, so their module names cannot clash with tests/unit's:
both folders have a test_distributed.py)."""
