"""How a history keeps values: short text as it is, anything else as a bounded digest.

A service under test chooses what its reads return. Kept whole, a read of a 1 MiB body
costs a megabyte of memory and of ``history.jsonl``, and every distinct garbage value is a
new state for the checkers. So a value is kept as it is only when it is at most
:data:`MAX_VALUE_BYTES` bytes of valid UTF-8; otherwise the history keeps a digest::

    <digest sha256=<64 hex digits> len=<bytes> head='<first 16 bytes, escaped>'>

The digest is of the value's bytes (a text value's UTF-8 encoding), so a written text and
a body with the same bytes are kept alike: equal values stay equal and different values
stay different (short of a SHA-256 collision), which is all the checkers compare. Bytes
that are not UTF-8 are digested whatever their length: a written value is always text, so
they can never equal one, and nothing has to decode them (decoding garbage with escapes
costs about 0.2 s of CPU per MiB).

256 bytes: the workload's own values (``"<stream>:<n>"``) are a few dozen bytes and stay
readable; a digest is about 110 characters, so a longer limit would save little and a
shorter one would hide values a person wants to read in a history.

:func:`stored_bytes` reads bytes off the wire; a body that starts like a digest is itself
digested, so a service cannot answer with a digest's text to pass for a long value.
:func:`stored_value` takes values already in Python (written values, a client's result)
and leaves digests as they are, so it may be applied to a value twice.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

MAX_VALUE_BYTES = 256
"""Values longer than this (in UTF-8 bytes) are kept as a digest."""

DIGEST_PREFIX = "<digest sha256="
_PREFIX_B = DIGEST_PREFIX.encode()
_DIGEST_RE = re.compile(r"<digest sha256=[0-9a-f]{64} len=\d+ head=.*>\Z", re.DOTALL)
_HEAD = 16


def digest(data: bytes) -> str:
    """The digest form of ``data`` (see the module doc)."""
    head = data[:_HEAD].decode("utf-8", errors="backslashreplace")
    return f"{DIGEST_PREFIX}{hashlib.sha256(data).hexdigest()} len={len(data)} head={head!r}>"


def is_digest(value: object) -> bool:
    """Whether ``value`` is a digest made by :func:`digest`."""
    return (
        isinstance(value, str)
        and value.startswith(DIGEST_PREFIX)
        and _DIGEST_RE.match(value) is not None
    )


def stored_bytes(data: bytes) -> str:
    """A response body as a history keeps it: its text when short UTF-8, else a digest."""
    if len(data) > MAX_VALUE_BYTES or data.startswith(_PREFIX_B):
        return digest(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return digest(data)


def stored_value(value: Any) -> Any:
    """``value`` as a history keeps it: long text digested, inside lists and tuples too
    (a cas's ``[expected, new]``); digests and other values unchanged."""
    if isinstance(value, str):
        if len(value) <= MAX_VALUE_BYTES // 4 and not value.startswith(DIGEST_PREFIX):
            return value  # the common case: at most 4 UTF-8 bytes a character
        if is_digest(value):
            return value
        data = value.encode("utf-8", errors="surrogatepass")
        if len(data) > MAX_VALUE_BYTES or value.startswith(DIGEST_PREFIX):
            return digest(data)
        return value
    if isinstance(value, bytes | bytearray):
        return stored_bytes(bytes(value))
    if isinstance(value, list | tuple):
        return type(value)(stored_value(v) for v in value)
    return value
