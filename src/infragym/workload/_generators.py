"""Seeded generators: the same spec and seed always give the same operations.

Generators never look at responses, so the sequence of ``(f, key, value, target)`` is a
function of the spec alone; that is what makes a grading run replayable and lets two
solutions be compared on identical traffic.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .._errors import ConfigError
from ..history import History, OpType
from ._clients import KVClient, RequestClient
from ._spec import Client, Op, Target, TargetsLike, parse_targets

Choice = Literal["round-robin", "random"]


@dataclass(frozen=True, slots=True)
class Mix:
    """Relative weights of reads, writes and compare-and-sets (need not sum to 1)."""

    read: float = 0.0
    write: float = 0.0
    cas: float = 0.0

    def __post_init__(self) -> None:
        weights = (self.read, self.write, self.cas)
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(f"mix weights must be >= 0 with a positive sum, got {self}")

    def pick(self, rng: random.Random) -> str:
        x = rng.random() * (self.read + self.write + self.cas)
        if x < self.read:
            return "read"
        if x < self.read + self.write:
            return "write"
        return "cas"


def _targets(targets: TargetsLike | tuple[Target, ...]) -> tuple[Target, ...]:
    return parse_targets(targets)


def _pick_target(targets: tuple[Target, ...], choice: Choice, i: int, rng: random.Random) -> Target:
    if choice == "round-robin":
        return targets[i % len(targets)]
    return targets[rng.randrange(len(targets))]


def _check_choice(choice: str) -> None:
    if choice not in ("round-robin", "random"):
        raise ConfigError(f"target choice must be 'round-robin' or 'random', got {choice!r}")


@dataclass(frozen=True)
class KVGenerator:
    """Reads, writes and cas on a small keyspace for the key-value API (see ``KVClient``).

    ``keys`` is a number of keys (named ``k0``, ``k1``...) or the key names themselves; a
    small keyspace makes operations on one key overlap, which is where consistency bugs
    show. ``choice`` spreads operations over targets round-robin or by the seeded RNG.

    Written values are ``"<name>:<n>"`` (``n`` = position in this generator), unique per
    run as long as stream names are, so a checker can tell which write a read saw and
    decide whether an acknowledged write was lost. A cas expects the value this generator
    last wrote (or swapped in) for that key, ``None`` (absent) if none yet, so that some
    cas succeed on a healthy system without the generator ever looking at a response.
    """

    targets: tuple[Target, ...]
    seed: int = 0
    mix: Mix = field(default_factory=lambda: Mix(read=0.5, write=0.5))
    keys: int | Sequence[str] = 8
    name: str = "kv"
    choice: Choice = "round-robin"

    def __init__(
        self,
        targets: TargetsLike,
        seed: int = 0,
        mix: Mix | None = None,
        keys: int | Sequence[str] = 8,
        name: str = "kv",
        choice: Choice = "round-robin",
    ) -> None:
        keyspace: int | tuple[str, ...]
        if isinstance(keys, int):
            if keys < 1:
                raise ConfigError(f"the keyspace needs at least one key, got keys={keys}")
            keyspace = keys
        else:
            keyspace = tuple(str(k) for k in keys)
            if not keyspace or any(not _url_safe(k) for k in keyspace):
                raise ConfigError("keys must be non-empty and use only [A-Za-z0-9._~-]")
        _check_choice(choice)
        if not name:
            raise ConfigError("a generator needs a non-empty name")
        object.__setattr__(self, "targets", _targets(targets))
        object.__setattr__(self, "seed", seed)
        object.__setattr__(self, "mix", mix if mix is not None else Mix(read=0.5, write=0.5))
        object.__setattr__(self, "keys", keyspace)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "choice", choice)

    @property
    def keyspace(self) -> tuple[str, ...]:
        if isinstance(self.keys, int):
            return tuple(f"k{i}" for i in range(self.keys))
        return tuple(self.keys)

    def ops(self) -> Iterator[Op]:
        rng = random.Random(self.seed)
        keys = self.keyspace
        last: dict[str, str | None] = {}
        i = 0
        while True:
            f = self.mix.pick(rng)
            key = keys[rng.randrange(len(keys))]
            target = _pick_target(self.targets, self.choice, i, rng)
            if f == "read":
                yield Op("read", target, key)
            elif f == "write":
                value = f"{self.name}:{i}"
                last[key] = value
                yield Op("write", target, key, value)
            else:
                new = f"{self.name}:{i}"
                yield Op("cas", target, key, [last.get(key), new])
                last[key] = new
            i += 1

    def default_client(self) -> Client:
        return KVClient()


@dataclass(frozen=True)
class RequestGenerator:
    """The same HTTP request over and over, spread over targets (e.g. a health probe)."""

    targets: tuple[Target, ...]
    path: str = "/"
    method: str = "GET"
    body: str | None = None
    seed: int = 0
    name: str = "requests"
    choice: Choice = "round-robin"

    def __init__(
        self,
        targets: TargetsLike,
        path: str = "/",
        method: str = "GET",
        body: str | None = None,
        seed: int = 0,
        name: str = "requests",
        choice: Choice = "round-robin",
    ) -> None:
        if not path.startswith("/"):
            raise ConfigError(f"request path must start with '/', got {path!r}")
        _check_choice(choice)
        if not name:
            raise ConfigError("a generator needs a non-empty name")
        object.__setattr__(self, "targets", _targets(targets))
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "method", method.upper())
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "seed", seed)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "choice", choice)

    def ops(self) -> Iterator[Op]:
        rng = random.Random(self.seed)
        i = 0
        while True:
            target = _pick_target(self.targets, self.choice, i, rng)
            yield Op("request", target, self.path, self.body, self.method)
            i += 1

    def default_client(self) -> Client:
        return RequestClient()


@dataclass(frozen=True)
class FinalReads:
    """One read of every key on every target: the "after heal" phase of a KV check.

    Reading each key on each node lets a checker see both lost acknowledged writes and
    replicas that never converged. Keys in ``spread`` are read once each, on the targets
    in turn (many keys written once: every node is still read, at a fraction of the load).
    """

    targets: tuple[Target, ...]
    keys: tuple[str, ...]
    name: str = "final-read"
    spread: frozenset[str] = frozenset()

    def __init__(
        self,
        targets: TargetsLike,
        keys: Iterable[str],
        name: str = "final-read",
        spread: Iterable[str] = (),
    ) -> None:
        object.__setattr__(self, "targets", _targets(targets))
        object.__setattr__(self, "keys", tuple(keys))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "spread", frozenset(spread))

    def ops(self) -> Iterator[Op]:
        turn = 0
        for key in self.keys:
            if key in self.spread:
                yield Op("read", self.targets[turn % len(self.targets)], key)
                turn += 1
                continue
            for target in self.targets:
                yield Op("read", target, key)

    @property
    def count(self) -> int:
        """How many reads :meth:`ops` yields."""
        spread = sum(k in self.spread for k in self.keys)
        return spread + (len(self.keys) - spread) * len(self.targets)

    def default_client(self) -> Client:
        return KVClient()


@dataclass(frozen=True)
class Rereads:
    """One read of each ``(target, key)`` pair, in order: a final read again where the
    first attempt got no answer (see :func:`~infragym.workload.read_back`)."""

    pairs: tuple[tuple[Target, str], ...]
    name: str = "final-read"

    def ops(self) -> Iterator[Op]:
        for target, key in self.pairs:
            yield Op("read", target, key)

    @property
    def count(self) -> int:
        return len(self.pairs)

    def default_client(self) -> Client:
        return KVClient()


@dataclass(frozen=True)
class WriteOnce:
    """One write to each of ``keys``, round-robin over the targets (value ``name:i``).

    Keys rewritten every second hide a replica that forgot its data in a crash; a key
    written once, before any fault, and read only by the final reads survives only if the
    system kept it through every fault of the run.
    """

    targets: tuple[Target, ...]
    keys: tuple[str, ...]
    name: str = "once"

    def __init__(self, targets: TargetsLike, keys: Iterable[str], name: str = "once") -> None:
        object.__setattr__(self, "targets", _targets(targets))
        object.__setattr__(self, "keys", tuple(keys))
        object.__setattr__(self, "name", name)

    def ops(self) -> Iterator[Op]:
        for i, key in enumerate(self.keys):
            yield Op("write", self.targets[i % len(self.targets)], key, f"{self.name}:{i}")

    def default_client(self) -> Client:
        return KVClient()


def keys_written(history: History) -> list[str]:
    """Every key some write or cas was invoked on, sorted (whatever its outcome)."""
    return sorted(
        {
            e.key
            for e in history.ops
            if e.type is OpType.INVOKE and e.f in ("write", "cas") and e.key is not None
        }
    )


def _url_safe(key: str) -> bool:
    return bool(key) and all(c.isascii() and (c.isalnum() or c in "._~-") for c in key)
