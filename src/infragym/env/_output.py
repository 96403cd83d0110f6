"""Turning bytes a command or a file produced into text a model can safely read.

Undecodable bytes are shown as ``\\xNN`` and NULs are removed (a model's context is text,
and some APIs reject NULs); other control characters but tab, newline and carriage return
are escaped. Long output keeps its start and its end (errors tend to come last) with a
marker in between that says how much was cut.
"""

from __future__ import annotations

import codecs
import re

__all__ = ["cut_marker", "is_binary", "render_cut", "render_prefix", "safe_text"]

_CONTROL = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _escape(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("\0", ""))


def safe_text(data: bytes) -> str:
    """``data`` as text: UTF-8 where it decodes, ``\\xNN`` where it does not, no NULs."""
    return _escape(data.decode("utf-8", errors="backslashreplace"))


def is_binary(data: bytes) -> bool:
    if b"\0" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a multi-byte character cut at the very end is not binary
        return exc.start < len(data) - 3
    return False


def _head_text(data: bytes) -> str:
    """Decode a prefix, dropping a character cut in half at its end."""
    dec = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")
    return _escape(dec.decode(data, final=False))


def _tail_text(data: bytes) -> str:
    """Decode a suffix, dropping continuation bytes of a character cut at its start."""
    i = 0
    while i < min(3, len(data)) and 0x80 <= data[i] <= 0xBF:
        i += 1
    return safe_text(data[i:])


def cut_marker(cut: int, kept_head: int, kept_tail: int) -> str:
    return (
        f"\n[... output truncated: {cut:,} bytes cut; showing the first {kept_head:,} "
        f"and the last {kept_tail:,} bytes ...]\n"
    )


def render_cut(head: bytes, tail: bytes, cut: int) -> str:
    """Text of an output whose middle (``cut`` bytes) was dropped between head and tail."""
    note = _binary_note(head + tail)
    if cut <= 0:
        return safe_text(head + tail) + note
    return _head_text(head) + cut_marker(cut, len(head), len(tail)) + _tail_text(tail) + note


def render_prefix(data: bytes) -> str:
    """Text of the first bytes of something longer (a file read in part)."""
    return _head_text(data) + _binary_note(data)


def _binary_note(data: bytes) -> str:
    if not is_binary(data):
        return ""
    return "\n[binary data: NUL bytes removed, undecodable bytes shown as \\xNN]"
