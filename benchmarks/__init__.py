"""Side-by-side benchmarks of db_pool and the pools it replaces.

Run ``python -m benchmarks --help``.
"""
