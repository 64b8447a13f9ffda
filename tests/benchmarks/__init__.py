"""Benchmarks, each against a naive baseline in the same run.

Not part of the default test run (pytest collects only ``test_*.py``).  Run all:

    python -m tests.benchmarks            # or: python tests/benchmarks/run.py
    python -m tests.benchmarks --quick    # smaller sizes, a few seconds
    python -m tests.benchmarks --only lag,latency

``tests/benchmarks/test_benchmarks_smoke.py`` runs each with tiny sizes in the test suite.
"""
