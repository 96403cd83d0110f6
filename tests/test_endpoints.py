"""Extra endpoints on a cluster's bridge and addresses drawn per connection: what the
attack suite (infragym.attack) stands on, so that blocking one address defeats nothing."""

from __future__ import annotations

import random
import textwrap

import pytest
from conftest import assert_no_leftovers, needs_root

from infragym import ConfigError
from infragym.sandbox import HOST_PYTHON, Cluster

pytestmark = needs_root

PEER_SERVER = textwrap.dedent(
    """
    import socket
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 7000)); s.listen(64)
    while True:
        c, peer = s.accept(); c.sendall(peer[0].encode()); c.close()
    """
)


def seen_from(c: Cluster, endpoint: str, source: str | None) -> str:
    with c.endpoint_socket(endpoint, source) as s:
        s.settimeout(3)
        s.connect((c.hosts[0].address, 7000))
        return s.recv(64).decode()


def test_drawn_addresses_are_what_the_host_sees_and_never_shared() -> None:
    with Cluster(1) as c:
        c.hosts[0].spawn("peer", [HOST_PYTHON, "-c", PEER_SERVER], service=True)
        c.hosts[0].wait_port(7000)
        attacker = c.endpoint("attacker")
        assert c.endpoint("attacker") == attacker  # built once
        assert attacker.address not in c.free_addresses()
        assert seen_from(c, "attacker", None) == attacker.address
        rng = random.Random(7)
        pool = c.free_addresses()[100:140]
        drawn: dict[str, set[str]] = {"client": set(), "attacker": set()}
        for i in range(12):
            who = ("client", "attacker")[i % 2]
            a = c.draw_address(who, rng, pool)
            assert a in pool and a not in c.free_addresses()
            # the host sees the drawn address, for the client as for the attacker
            assert seen_from(c, who, a) == a
            drawn[who].add(a)
        assert not drawn["client"] & drawn["attacker"]
        assert len(drawn["attacker"]) > 1  # a new one each time
        # only the last draw is still held: an older one can no longer be sent from
        last = c.draw_address("attacker", rng, pool)
        older = next(a for a in drawn["attacker"] if a != last)
        with pytest.raises(OSError):
            c.endpoint_socket("attacker", older).close()
        with pytest.raises(ConfigError):
            c.endpoint(c.hosts[0].name)
        run_id = c.run_id
    assert_no_leftovers(run_id)
