"""Fixtures of the common suite: ``pool_cls`` runs each test over both
pool variants; ``db`` and ``make_pool`` come from tests/unit/_fakes.py."""

import pytest

import db_pool
from tests.unit._fakes import db, make_pool  # noqa: F401  (fixtures)


@pytest.fixture(
    params=[db_pool.RawConnectionPool, db_pool.TpooledConnectionPool],
    ids=["raw", "tpooled"],
)
def pool_cls(request):
    """Each pool class whose behaviour the common suite pins down."""
    return request.param


@pytest.fixture
def pool(pool_cls, db, make_pool):  # noqa: F811  (the fixtures imported above)
    """A pool of at most 1 connection, with nothing open yet."""
    return make_pool(pool_cls, db, max_size=1)
