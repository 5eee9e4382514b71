"""Option checks and backoff: pure functions, no I/O."""

from __future__ import annotations

import random
from typing import Any

from .errors import ConfigError

__all__ = ["Backoff", "check_int", "check_number", "check_callable"]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(
    name: str, value: Any, minimum: int = 0, allow_none: bool = False
) -> int | None:
    """Return *value* if it is an int >= *minimum* (or None when allowed)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(
            "%s must be an integer%s, not %r"
            % (name, " or None" if allow_none else "", value)
        )
    if value < minimum:
        raise ConfigError("%s must be >= %d, got %r" % (name, minimum, value))
    return value


def check_number(
    name: str, value: Any, allow_none: bool = True, positive: bool = False
) -> float | None:
    """Return *value* if it is a number >= 0 (> 0 if *positive*), or None."""
    if value is None:
        if allow_none:
            return None
        raise TypeError("%s must be a number of seconds, not None" % (name,))
    if not _is_number(value):
        raise TypeError(
            "%s must be a number of seconds%s, not %r"
            % (name, " or None" if allow_none else "", value)
        )
    if value != value:  # NaN
        raise ConfigError("%s must be a number, got %r" % (name, value))
    if value < 0 or (positive and value == 0):
        raise ConfigError(
            "%s must be %s, got %r" % (name, "> 0" if positive else ">= 0", value)
        )
    return value


def check_callable(name: str, value: Any, allow_none: bool = True) -> Any:
    if value is None and allow_none:
        return None
    if not callable(value):
        raise TypeError("%s must be callable, not %r" % (name, value))
    return value


class Backoff:
    """Exponential backoff with full jitter, between *initial* and *maximum*."""

    __slots__ = ("initial", "maximum", "attempts")

    def __init__(self, initial: float = 0.1, maximum: float = 10.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempts = 0

    def next_delay(self) -> float:
        """The delay before the next attempt (counts one more failure)."""
        ceiling = min(self.maximum, self.initial * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        # Half fixed, half random: spreads retries of many processes apart
        # while keeping the delay growing.
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempts = 0
