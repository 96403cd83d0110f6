"""Attacks on a deployed service, from addresses a service cannot single out.

An attack suite is a list of :class:`Attack` run one after another by :func:`run_suite`
from a :class:`Peer`: an endpoint of the cluster (``Cluster.endpoint("attacker")``) that
draws a new source address for every attack, from the range the legitimate clients draw
theirs from (``Cluster.draw_address``). Each attack says whether it *succeeded*, judged by
what it was after (the secret's bytes, an unauthenticated ``+PONG``, a TLS 1.0 handshake),
never by a status code alone. :func:`record` keeps the results in the history and
:class:`AttackSuite` scores them (the share blocked, weighted by :data:`WEIGHTS`), also
offline. The constructors :func:`leak`, :func:`redis_command`, :func:`tls_accepted`,
:func:`accepted_status`, :func:`brute_force`, :func:`file_modes` and :func:`port_scan` are
the reusable probes.
"""

from ._client import MAX_BODY, Peer, Response, tls_context
from ._probes import (
    accepted_status,
    brute_force,
    file_modes,
    leak,
    port_scan,
    redis_command,
    tls_accepted,
)
from ._suite import (
    WEIGHTS,
    Attack,
    AttackResult,
    AttackSuite,
    Outcome,
    blocked_share,
    record,
    recorded,
    run_attack,
    run_suite,
)

__all__ = [
    "MAX_BODY",
    "WEIGHTS",
    "Attack",
    "AttackResult",
    "AttackSuite",
    "Outcome",
    "Peer",
    "Response",
    "accepted_status",
    "blocked_share",
    "brute_force",
    "file_modes",
    "leak",
    "port_scan",
    "record",
    "recorded",
    "redis_command",
    "run_attack",
    "run_suite",
    "tls_accepted",
    "tls_context",
]
