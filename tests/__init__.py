"""db_pool's test suite.

Shared helpers: conftest.py (fixtures), fakedb.py, proxy.py and dbutil.py.
"""
