"""db_pool test suite; shared helpers live in conftest.py, fakedb.py, proxy.py and dbutil.py."""
