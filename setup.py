"""Build script: the metadata is in setup.cfg; this adds the optional C
extension (the fast paths of get() and put(), db_pool/_speedups.c).

Where it cannot be built (no C compiler, no Python headers, not CPython),
the install goes on without it and db_pool runs its Python code.
"""

import platform

from setuptools import Extension, setup

ext_modules = []
if platform.python_implementation() == "CPython":
    ext_modules.append(
        Extension("db_pool._speedups", ["db_pool/_speedups.c"], optional=True)
    )

setup(ext_modules=ext_modules)
