"""The stock functional tests of a key-value service over HTTP (``PUT``/``GET`` of
``{prefix}{key}``, 404 for a key never written), for a task's limits: its longest key and
largest value. Nodes are addressed by index, so the tests follow any variant's host names.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._probe import HttpProbe, ProbeTest

__all__ = ["kv_functional_tests"]

ODD_KEYS = ("a.b_c~d-E9", "UPPER.lower", "~tilde", "_", "-dash-")
SYMBOLS = '  padded  \n\tline two\r\n{"json": [1, 2]} & <b>%20</b> /kv/x?y=z#f '
UNICODE = "héllo wörld ✓ 日本語 🚀 "


def _node(p: HttpProbe, i: int) -> str:
    return p.nodes[i % len(p.nodes)]


async def _put_get_same_node(p: HttpProbe) -> None:
    await p.put(_node(p, 0), "fx-same", f"hello {p.tag}")
    await p.expect(_node(p, 0), "fx-same", f"hello {p.tag}")


async def _missing_key_is_404(p: HttpProbe) -> None:
    for n in p.nodes:
        await p.expect(n, f"fx-never-written-{p.tag}", None)


async def _overwrite_same_node(p: HttpProbe) -> None:
    await p.put(_node(p, 2), "fx-over", f"first {p.tag}")
    await p.put(_node(p, 2), "fx-over", f"second {p.tag}")
    await p.expect(_node(p, 2), "fx-over", f"second {p.tag}")
    await p.eventually("fx-over", f"second {p.tag}")


async def _overwrite_from_another_node(p: HttpProbe) -> None:
    await p.put(_node(p, 0), "fx-cross", f"v1 {p.tag}")
    await p.eventually("fx-cross", f"v1 {p.tag}")
    await p.put(_node(p, 1), "fx-cross", f"v2 {p.tag}")
    await p.eventually("fx-cross", f"v2 {p.tag}")


async def _keys_are_independent(p: HttpProbe) -> None:
    await p.put(_node(p, 2), "fx-one", f"one {p.tag}")
    await p.put(_node(p, 0), "fx-two", f"two {p.tag}")
    await p.eventually("fx-one", f"one {p.tag}")
    await p.eventually("fx-two", f"two {p.tag}")


async def _keys(p: HttpProbe, keys: Sequence[str]) -> None:
    for i, key in enumerate(keys):
        await p.put(_node(p, i), key, f"key {key} {p.tag}")
    for key in keys:
        await p.eventually(key, f"key {key} {p.tag}")


def kv_functional_tests(
    max_key_len: int, max_value_bytes: int
) -> tuple[tuple[str, ProbeTest], ...]:
    """Named tests for :class:`~infragym.grading.Functional`: a write read back on its node
    and visible on every node, a missing key, overwrites on one node and across nodes,
    independent keys, odd legal keys up to ``max_key_len`` characters, unicode, whitespace
    and symbols, an empty value and a ``max_value_bytes`` one. Every value carries the
    probe's fresh tag, so no run's answers can be replayed."""
    large = "0123456789abcdef" * (max_value_bytes // 16 + 1)  # the tag first: fresh per run
    return (
        ("put-get-same-node", _put_get_same_node),
        ("visible-on-every-node", lambda p: p.put_visible(_node(p, 1), "fx-all", f"v {p.tag}")),
        ("missing-key-404", _missing_key_is_404),
        ("overwrite-same-node", _overwrite_same_node),
        ("overwrite-from-another-node", _overwrite_from_another_node),
        ("keys-are-independent", _keys_are_independent),
        ("odd-legal-keys", lambda p: _keys(p, (*ODD_KEYS, "k" * max_key_len))),
        ("unicode-value", lambda p: p.put_visible(_node(p, 1), "fx-unicode", UNICODE + p.tag)),
        (
            "whitespace-and-symbols-value",
            lambda p: p.put_visible(_node(p, 2), "fx-symbols", f"{SYMBOLS}{p.tag}\n"),
        ),
        ("empty-value", lambda p: p.put_visible(_node(p, 0), "fx-empty", "")),
        (
            f"{max_value_bytes}-byte-value",
            lambda p: p.put_visible(_node(p, 1), "fx-large", (p.tag + large)[:max_value_bytes]),
        ),
    )
