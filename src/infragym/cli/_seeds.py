"""The one seed rule of every command: a seed is a whole number >= 0.

``run --seeds`` takes a seed (``3``), an inclusive range (``1-8``) or a list of either
(``1,2,5`` or ``1-4,9``), at most :data:`MAX_SEEDS` of them and none twice; ``play``,
``grade`` and ``demo --seed`` take exactly one. Every error names what is wrong and what
to write instead.
"""

from __future__ import annotations

import argparse
import re

MAX_SEEDS = 10_000
_NUM = re.compile(r"\d+")
_RANGE = re.compile(r"(\d+)-(\d+)")


def _bad(text: str, why: str, part: str | None = None) -> argparse.ArgumentTypeError:
    """The error for ``text``; when one item of a list is wrong, the list is quoted too."""
    return argparse.ArgumentTypeError(why if part == text.strip() else f"{text}: {why}")


def _part(text: str, part: str) -> range:
    """One item of a seed list, as the range of seeds it names."""
    if _NUM.fullmatch(part):
        return range(int(part), int(part) + 1)
    m = _RANGE.fullmatch(part)
    if m:
        a, b = int(m[1]), int(m[2])
        if a > b:
            raise _bad(text, f"the range {part} is reversed; write {b}-{a}", part)
        return range(a, b + 1)
    if not text.strip():
        why = "no seed given; write a seed N, a range A-B or a list A,B,C"
    elif not part:
        why = "an empty item; write a seed N, a range A-B or a list A,B,C"
    elif part.startswith("-") and _NUM.fullmatch(part[1:]):
        why = f"{part} is negative; seeds are whole numbers >= 0"
    elif part.endswith("-") and _NUM.fullmatch(part[:-1]):
        why = f"the range {part} has no end; write A-B, e.g. {part}{int(part[:-1]) + 7}"
    elif "-" in part and all(_NUM.fullmatch(x) for x in part.split("-") if x):
        why = f"{part} is not a range A-B of seeds >= 0"
    else:
        why = f"{part} is not a whole number; write a seed N, a range A-B or a list A,B,C"
    raise _bad(text, why, part)


def parse_seeds(text: str) -> list[int]:
    """``3``, ``1-8``, ``1,2,5`` or ``1-4,9`` as the list of seeds, in the order given."""
    parts = [_part(text, p.strip()) for p in text.split(",")]
    total = sum(len(r) for r in parts)
    if total > MAX_SEEDS:
        raise _bad(text, f"{total} seeds; at most {MAX_SEEDS} in one run")
    seeds: list[int] = []
    seen: set[int] = set()
    for r in parts:
        for s in r:
            if s in seen:
                raise _bad(text, f"seed {s} is given twice (the same seed is the same episode)")
            seen.add(s)
            seeds.append(s)
    return seeds


def parse_seed(text: str) -> int:
    """Exactly one seed, by the same rule as :func:`parse_seeds`."""
    seeds = parse_seeds(text)
    if len(seeds) != 1:
        raise _bad(text, f"{len(seeds)} seeds; this command takes one seed N")
    return seeds[0]
