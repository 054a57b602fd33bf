"""Benchmarks: ``make bench`` (``python -m tests.bench``) measures the service against the seed's design.

Not a test suite: nothing here is collected by pytest. See docs/PERFORMANCE.md for the method
and the latest results, which this package regenerates.
"""
