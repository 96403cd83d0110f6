"""Specs of a workload: where operations go, what they are, and how fast they arrive.

Everything here is a frozen value so a workload can be described, compared, logged and
replayed from its seed. Targets are restricted to loopback and the clusters' own address
block (198.18.0.0/15) because a grader must never be able to send load anywhere else.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from .._errors import ConfigError
from ..history import OpType

_ALLOWED_NETS = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("198.18.0.0/15"),
)


@dataclass(frozen=True, slots=True)
class Target:
    """One service endpoint: ``node`` is what the history records, ``url`` the base URL."""

    node: str
    url: str


TargetsLike = Sequence[str] | Sequence[Target] | Mapping[str, str]


def parse_targets(targets: TargetsLike) -> tuple[Target, ...]:
    """Normalise base URLs (node = ``host:port``) or a ``{node: url}`` mapping.

    Only literal addresses on loopback or in 198.18.0.0/15 (and ``localhost``) are
    accepted: the workload is a load generator and must not be pointed elsewhere.
    """
    if isinstance(targets, Mapping):
        items = [Target(str(node), _check_url(url)) for node, url in targets.items()]
    else:
        items = []
        for t in targets:
            if isinstance(t, Target):
                items.append(Target(t.node, _check_url(t.url)))
            else:
                url = _check_url(t)
                items.append(Target(urlsplit(url).netloc, url))
    if not items:
        raise ConfigError("a workload needs at least one target base URL")
    nodes = [t.node for t in items]
    if len(set(nodes)) != len(nodes):
        raise ConfigError(f"target nodes must be distinct, got {nodes}")
    return tuple(items)


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"target {url!r} must be an http://HOST:PORT base URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"target {url!r} must be a base URL without a path or query")
    host = parts.hostname
    if host != "localhost":
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(
                f"target {url!r}: use a literal IP address (loopback or 198.18.0.0/15)"
            ) from None
        if not any(addr in net for net in _ALLOWED_NETS):
            raise ConfigError(
                f"target {url!r} is outside loopback and 198.18.0.0/15; the workload only "
                "sends traffic to the project's own hosts"
            )
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise ConfigError(f"target {url!r}: {exc}") from None
    return f"http://{parts.netloc}"


@dataclass(frozen=True, slots=True)
class Op:
    """One planned operation, before it has an id or a time.

    ``f`` is the kind (``read``, ``write``, ``cas``, ``request``). For a write ``value``
    is the value to write, for a cas ``[expected, new]``, for a generic request the body;
    ``method`` is only used by generic requests (``key`` is then the path).
    """

    f: str
    target: Target
    key: str | None = None
    value: Any = None
    method: str | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """What a client concluded from a response: the completion's type, value and error."""

    type: OpType
    value: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class HttpCall:
    """The HTTP request a client makes for one operation (``path`` joins the target URL)."""

    method: str
    path: str
    body: bytes | None = None
    content_type: str | None = None


class Client(Protocol):
    """Maps operations to HTTP and responses back to outcomes; does no I/O itself.

    Keeping the protocol mapping free of I/O lets one transport (and its connection pool)
    serve every stream, and keeps the mapping testable without a server.
    """

    def encode(self, op: Op) -> HttpCall: ...

    def decode(self, op: Op, status: int, body: bytes) -> Result: ...


class Generator(Protocol):
    """A pure, replayable source of operations: every call of ``ops()`` starts afresh.

    ``name`` identifies the stream in a run (and prefixes written values, so values are
    unique per run); ``default_client`` is the client that speaks this generator's API.
    """

    @property
    def name(self) -> str: ...

    def ops(self) -> Iterator[Op]: ...

    def default_client(self) -> Client: ...


@dataclass(frozen=True)
class Stream:
    """Operations of one generator arriving open-loop at ``rate`` per second.

    Operation ``i`` is intended to start at ``start + i / rate`` seconds after the run
    starts, whatever happened to earlier ones. The stream ends at whichever comes first:
    ``duration`` seconds of arrivals, ``max_ops`` operations, or the generator running out;
    at least one of ``duration`` and ``max_ops`` must be given so every run is bounded.
    ``timeout`` bounds one operation from its actual start: past it the outcome is unknown
    (``info``); not being connected within half of it is a ``fail`` (nothing was sent).
    """

    generator: Generator
    rate: float
    duration: float | None = None
    max_ops: int | None = None
    timeout: float = 2.0
    start: float = 0.0
    client: Client | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ConfigError(f"stream rate must be a positive number of ops/s, got {self.rate}")
        if self.duration is None and self.max_ops is None:
            raise ConfigError("a stream needs a duration or max_ops (every load loop is bounded)")
        if self.duration is not None and not (math.isfinite(self.duration) and self.duration > 0):
            raise ConfigError(f"stream duration must be positive seconds, got {self.duration}")
        if self.max_ops is not None and self.max_ops < 0:
            raise ConfigError(f"stream max_ops must be >= 0, got {self.max_ops}")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ConfigError(f"stream timeout must be positive seconds, got {self.timeout}")
        if not (math.isfinite(self.start) and self.start >= 0):
            raise ConfigError(f"stream start must be >= 0 seconds, got {self.start}")

    @property
    def name(self) -> str:
        return self.generator.name

    @property
    def count(self) -> int:
        """Upper bound on the operations this stream launches."""
        bounds = []
        if self.duration is not None:
            bounds.append(math.ceil(self.duration * self.rate - 1e-9))
        if self.max_ops is not None:
            bounds.append(self.max_ops)
        return min(bounds)

    def resolved_client(self) -> Client:
        return self.client if self.client is not None else self.generator.default_client()
