"""Run one scenario of ``faults_common`` against MariaDB, in a fresh interpreter.

Usage (from the repository root, which must be on ``sys.path``)::

    python tests/isolated/faults_mysql.py DRIVER SCENARIO SETTINGS_JSON

*DRIVER* is ``pymysql`` (RawConnectionPool; the interpreter is
monkey-patched first, which is what makes PyMySQL green) or ``mysqldb``
(TpooledConnectionPool; no monkey-patching: every call goes to an OS
thread).  *SETTINGS_JSON* holds ``connect`` (PyMySQL/MySQLdb connect
keywords), ``marker`` (a name for the pool) and ``kwargs`` (scenario
arguments).  The last line of standard output is a JSON object:
``{"result": {...}}``, or ``{"error": "traceback"}``.

Called by ``tests/realdb/test_faults_mysql.py``; not a test module itself.
"""

import os
import sys
import warnings

if __name__ == "__main__":
    DRIVER = sys.argv[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import eventlet
    if DRIVER == "pymysql":
        eventlet.monkey_patch()

import json  # noqa: E402
import traceback  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv):
    driver, scenario, settings = argv[1], argv[2], json.loads(argv[3])
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from tests.isolated import faults_common

    backend_class = {
        "pymysql": faults_common.PyMySQLBackend,
        "mysqldb": faults_common.MySQLdbBackend,
    }[driver]
    backend = backend_class(settings["connect"], settings["marker"])
    try:
        result = faults_common.SCENARIOS[scenario](
            backend, **settings.get("kwargs", {})
        )
    except BaseException:
        print(json.dumps({"error": traceback.format_exc()}))
        return 1
    finally:
        backend.close()
    print(json.dumps({"result": result}, default=repr))
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    if DRIVER == "mysqldb":
        # Threads of eventlet's pool may still be stuck in a driver call that
        # the pool gave up on; do not wait for them at exit.
        os._exit(code)
    sys.exit(code)
