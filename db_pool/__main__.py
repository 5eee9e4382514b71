"""``python -m db_pool``: see :mod:`db_pool.cli`."""

import sys

from db_pool.cli import main

if __name__ == "__main__":
    sys.exit(main())
