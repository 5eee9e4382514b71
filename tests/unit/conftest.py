"""Fixtures of the unit suite: see tests/unit/_fakes.py."""

from tests.unit._fakes import db, make_pool  # noqa: F401  (fixtures)
