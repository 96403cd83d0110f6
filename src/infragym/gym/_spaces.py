"""The text spaces of the Gymnasium adapter: one charset for actions and observations.

Gymnasium's :class:`~gymnasium.spaces.Text` needs a finite charset. Ours is the Basic
Multilingual Plane as a model reads it: tab, newline and carriage return, printable ASCII,
and every code point from U+00A0 to U+FFFF but the surrogates (63,426 characters). Left
out are the other C0 controls and DEL (the env's output renderer already escapes them),
the C1 controls (escaped alike here), the surrogates (decoded output never holds one) and
the characters beyond U+FFFF (emoji, rare scripts: with them the charset would have over a
million characters, and building a ``Text`` space indexes every one). :func:`to_charset`
writes each of those the way Python writes it in a string literal (``\\x85``,
``\\ud800``, ``\\U0001f600``), as the renderer writes undecodable bytes, so every
observation is in the space by construction.
"""

from __future__ import annotations

import copy
import functools
import re

from gymnasium.spaces import Text

__all__ = ["CHARSET", "fit", "text_space", "to_charset"]

_RANGES = ((0x09, 0x0A), (0x0D, 0x0D), (0x20, 0x7E), (0xA0, 0xD7FF), (0xE000, 0xFFFF))

CHARSET: frozenset[str] = frozenset(chr(c) for lo, hi in _RANGES for c in range(lo, hi + 1))

_OUTSIDE = re.compile("[^" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in _RANGES) + "]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    if c < 0x100:
        return f"\\x{c:02x}"
    if c < 0x10000:
        return f"\\u{c:04x}"
    return f"\\U{c:08x}"


def to_charset(text: str) -> str:
    """``text`` with every character outside :data:`CHARSET` written as an escape."""
    return _OUTSIDE.sub(_escape, text)


def fit(text: str, max_length: int) -> str:
    """``text`` if it is at most ``max_length`` characters, else its start and its end with
    a marker in between that says how much was cut (the env's limits keep observations far
    below the bound: this only makes the bound a guarantee)."""
    if len(text) <= max_length:
        return text
    marker = "\n[... {:,} characters cut ...]\n"
    room = max_length - len(marker.format(len(text)))
    head = room // 2
    tail = room - head
    return text[:head] + marker.format(len(text) - room) + text[len(text) - tail :]


@functools.lru_cache(maxsize=8)
def _template(min_length: int, max_length: int) -> Text:
    return Text(max_length, min_length=min_length, charset=CHARSET)


def text_space(min_length: int, max_length: int) -> Text:
    """A ``Text`` space over :data:`CHARSET` with its own random generator.

    Building one indexes the 63,426 characters (about 0.1 s and 13 MB), so spaces of the
    same bounds share the index (it is never modified) and differ only in their generator.
    """
    space = copy.copy(_template(min_length, max_length))
    space.seed(None)
    return space
