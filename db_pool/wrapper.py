"""The objects handed to callers in place of raw driver connections."""

from __future__ import annotations

from typing import Any, Callable, NoReturn

from .errors import ConnectionReturnedError

__all__ = ["GenericConnectionWrapper", "PooledConnectionWrapper"]

# Methods that eventlet's wrapper defined on its class.  Code written for it
# may fetch one of them from a returned wrapper and call it later (for
# example ``assertRaises(AttributeError, conn.cursor)``): for these names a
# returned wrapper hands out a function that raises on call, instead of
# raising on attribute access.
_CALLABLE_NAMES = frozenset(
    """affected_rows autocommit begin change_user character_set_name close
    commit cursor dump_debug_info errno error errorhandler get_server_info
    insert_id literal ping query rollback select_db server_capabilities
    set_character_set set_isolation_level set_server_option set_sql_mode
    show_warnings shutdown sqlstate stat store_result string_literal thread_id
    use_result warning_count""".split()
)

_RETURNED_MESSAGE = (
    "this connection was returned to the pool; the wrapper cannot be used "
    "any more (tried to use %r). Get a new connection from the pool."
)


def _returned(name: str) -> NoReturn:
    raise ConnectionReturnedError(_RETURNED_MESSAGE % (name,))


def _target(base: Any) -> Any:
    """Where attribute writes must land: behind an eventlet ``tpool.Proxy``
    (which has no ``__setattr__`` of its own and would keep the value on
    itself), the driver's connection."""
    if type(base).__name__ == "Proxy" and type(base).__module__ == "eventlet.tpool":
        return base._obj
    return base


class GenericConnectionWrapper:
    """Passes every attribute, read or written, through to *baseconn*.

    Only the wrapper's own attributes (which all start with ``_``) live on
    the wrapper itself.
    """

    __slots__ = ("_base", "__weakref__")

    def __init__(self, baseconn: Any) -> None:
        object.__setattr__(self, "_base", baseconn)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails, i.e. for the driver's names.
        base = self._base
        if base is None:
            if name in _CALLABLE_NAMES:

                def gone(*args: Any, **kwargs: Any) -> NoReturn:
                    _returned(name)

                return gone
            _returned(name)
        return getattr(base, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(type(self), name):
            object.__setattr__(self, name, value)
        else:
            base = self._base
            if base is None:
                _returned(name)
            setattr(_target(base), name, value)

    def __delattr__(self, name: str) -> None:
        if hasattr(type(self), name):
            object.__delattr__(self, name)
        else:
            base = self._base
            if base is None:
                _returned(name)
            delattr(_target(base), name)

    def __enter__(self) -> Any:
        base = self._base
        if base is None:
            _returned("__enter__")
        result = base.__enter__()
        # The driver's __enter__ returns the connection itself: hand back the
        # wrapper, never the bare connection (a tpool.Proxy's __enter__
        # returns the object behind it).
        return self if result is base or result is _target(base) else result

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        base = self._base
        if base is None:
            _returned("__exit__")
        return base.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        base = self._base
        if base is None:
            return "<%s (returned)>" % (type(self).__name__,)
        # Not repr(base): some drivers put their DSN in it.  Name the
        # driver's class, also behind a tpool.Proxy.
        target = _target(base)
        return "<%s for %s.%s object at 0x%x>" % (
            type(self).__name__,
            type(target).__module__,
            type(target).__name__,
            id(target),
        )


# The storage of GenericConnectionWrapper._base, which PooledConnectionWrapper
# shadows with a property: a directly constructed wrapper keeps its
# connection there.
_plain_base: Any = GenericConnectionWrapper.__dict__["_base"]


class _Detached:
    """Marks a wrapper emptied by ``_unwrap_connection``: the caller owns the
    raw connection, the pool slot is still taken until the wrapper is put."""

    __slots__ = ("record",)

    def __init__(self, record: Any) -> None:
        self.record = record


class PooledConnectionWrapper(GenericConnectionWrapper):
    """A connection lent by a pool.

    - ``close()`` returns the connection to the pool instead of closing it;
    - ``bool(wrapper)`` is False once the connection went back;
    - a wrapper dropped without being returned is reclaimed by its pool, with
      a warning that says where the connection was checked out.
    """

    # The record (the pool's entry for the connection) is the only state:
    # one slot to fill per checkout keeps the pool's hot path short.
    __slots__ = ("_record", "_own_pool")

    def __init__(self, baseconn: Any, pool: Any = None) -> None:
        # Direct construction (outside a pool) as in eventlet: a bare holder.
        object.__setattr__(self, "_record", None)
        object.__setattr__(self, "_own_pool", pool)
        _plain_base.__set__(self, baseconn)

    @property  # type: ignore[override]
    def _base(self) -> Any:
        rec = self._record
        if rec is None or rec.__class__ is _Detached:
            # Never let AttributeError out of here: __getattr__ would recurse.
            try:
                return _plain_base.__get__(self, None)
            except AttributeError:
                return None
        return rec.conn

    @_base.setter
    def _base(self, value: Any) -> None:
        _plain_base.__set__(self, value)

    @property
    def _pool(self) -> Any:
        """The pool this connection belongs to (None once returned)."""
        rec = self._record
        if rec is not None and rec.__class__ is not _Detached:
            return rec.pool
        # Wrappers made on the pool's hot path never set _own_pool.
        return _get_own_pool(self)

    def __bool__(self) -> bool:
        return self._base is not None

    __nonzero__ = __bool__

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        # Defined here rather than left to __getattr__, which Python reaches
        # only after a failed lookup has raised (and caught) an
        # AttributeError: cursor() is called for nearly every query.
        rec = self._record
        if rec is not None and rec.__class__ is not _Detached:
            return rec.conn.cursor(*args, **kwargs)
        base = self._base
        if base is None:
            _returned("cursor")
        return base.cursor(*args, **kwargs)

    @property
    def _db_pool_created_at(self) -> float:
        rec = self._record
        return (
            rec.created_at
            if rec is not None and rec.__class__ is not _Detached
            else 0.0
        )

    def _destroy(self) -> None:
        """Forget the connection (eventlet's name); the slot stays taken."""
        rec = self._record
        if rec is not None and rec.__class__ is not _Detached:
            object.__setattr__(self, "_own_pool", rec.pool)
            object.__setattr__(self, "_record", _Detached(rec))
        _plain_base.__set__(self, None)

    def close(self) -> None:
        """Return the connection to the pool; the wrapper becomes unusable."""
        pool = self._pool
        if self._base is not None and pool is not None:
            pool.put(self)
        self._destroy()

    def __del__(self) -> None:
        # Dropped while still lent: let the pool take the slot back.  No I/O
        # here (a finalizer may run inside the hub); the pool schedules it.
        rec = self._record
        if rec is not None:
            if rec.__class__ is _Detached:
                rec.record.pool._reclaim_dropped(rec.record, False)
            else:
                rec.pool._reclaim_dropped(rec, True)


_own_pool_slot: Any = PooledConnectionWrapper.__dict__["_own_pool"]


def _get_own_pool(wrapper: Any) -> Any:
    """``wrapper._own_pool``, or None when it was never set (without going
    through ``__getattr__``, which raises on a returned wrapper)."""
    try:
        return _own_pool_slot.__get__(wrapper, None)
    except AttributeError:
        return None


# Fast setter for the pool's hot path: it skips __setattr__.
set_record: Callable[[Any, Any], None] = PooledConnectionWrapper._record.__set__  # type: ignore[attr-defined]
