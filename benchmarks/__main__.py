"""Entry point: ``python -m benchmarks [--quick] [--only B1,B2] ...``."""

import warnings

# Patch before anything imports threading, socket or a driver: SQLAlchemy's
# and DBUtils' locks must be green, and so must PyMySQL's sockets.
with warnings.catch_warnings():
    # Importing eventlet announces its maintenance mode; that is not news here.
    warnings.simplefilter("ignore")
    import eventlet

eventlet.monkey_patch()

import sys  # noqa: E402

from benchmarks.cli import main  # noqa: E402

sys.exit(main())
