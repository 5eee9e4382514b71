"""Keeping passwords out of reprs, logs and error messages."""

from __future__ import annotations

import re
from typing import Any, Iterable

__all__ = ["connect_secrets", "redact", "SENSITIVE_KEYS", "safe_kwargs"]

#: Connect keywords whose values are never shown.
SENSITIVE_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "dsn",
        "ssl",
        "sslkey",
        "sslpassword",
        "secret",
    }
)

_PATTERNS = (
    # key=value in libpq DSNs and similar (password=secret, passwd='x y')
    re.compile(
        r"(?i)\b(password|passwd|pwd|sslpassword)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)"
    ),
    # URLs: scheme://user:secret@host
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)([^@\s]*)(@)"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """*text* with passwords (and the literal *secrets*) replaced by ``***``."""
    text = _PATTERNS[0].sub(lambda m: "%s=***" % m.group(1), text)
    text = _PATTERNS[1].sub(lambda m: "%s***%s" % (m.group(1), m.group(3)), text)
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def safe_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A copy of connect keywords fit for display: secrets masked."""
    return {k: ("***" if k.lower() in SENSITIVE_KEYS else v) for k, v in kwargs.items()}


def connect_secrets(args: Iterable[Any], kwargs: dict[str, Any]) -> list[str]:
    """The literal secrets among connect arguments, for :func:`redact`.

    The values of sensitive keywords (``password``, ...), and the passwords
    inside DSN and URL strings: a driver's error message may quote any of
    them in a form the patterns above do not catch.
    """
    found = []
    texts = [v for v in args if isinstance(v, str)]
    for key, value in kwargs.items():
        if not isinstance(value, str):
            continue
        texts.append(value)
        if key.lower() in SENSITIVE_KEYS and key.lower() != "dsn":
            found.append(value)
    for text in texts:
        for match in _PATTERNS[0].finditer(text):
            found.append(match.group(2).strip("'"))
        for match in _PATTERNS[1].finditer(text):
            found.append(match.group(2))
    return [secret for secret in found if secret]
