"""Run ids, resource names and the on-disk record of what each run created.

Every kernel object a run makes carries its run id in its name, and the run records itself
in ``STATE_DIR/<run id>.json`` with the owner's pid and start time. ``infragym cleanup``
uses these to find what a killed run left behind, and leaves live runs alone.

A record also says whether its resource is still in use. An owner whose teardown failed
(a step raised) marks the record ``leaked``: the resource is finished, what is left of it
is garbage, and ``infragym cleanup`` reclaims it even while the owner (a long training
process) lives on. A live record carries no state key, so readers that predate it still
read it (and take a leaked one for an orphan, which they sweep as well).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .._errors import ResourceError
from ._sys import pid_start_time

STATE_DIR = Path(os.environ.get("INFRAGYM_STATE_DIR", "/run/infragym"))
DATA_ROOT = Path(os.environ.get("INFRAGYM_DATA_ROOT", "/var/lib/infragym/runs"))
NETNS_PREFIX = "ig-"
LINK_PREFIX = "ig"
LINK_KINDS = "bvi"  # bridge, veth (a port of the bridge), ifb (shapes what a port sends)
TABLE_PREFIX = "infragym_"  # nft tables in the machine's namespace: infragym_<run id>_<name>
NETWORK = ipaddress.IPv4Network("198.18.0.0/15")
SUBNET_PREFIX = 24
LIVE = "live"  # in use by its owner: never touched while the owner lives
LEAKED = "leaked"  # its owner's teardown failed: reclaimable whoever still runs


def new_run_id() -> str:
    """Six hex digits: short enough for 15-character interface names."""
    return secrets.token_hex(3)


def valid_run_id(run_id: str) -> bool:
    """Exactly six lowercase hex digits: anything else is not ours to touch."""
    return len(run_id) == 6 and all(c in "0123456789abcdef" for c in run_id)


def netns_name(run_id: str, host: str) -> str:
    return f"{NETNS_PREFIX}{run_id}-{host}"


def bridge_name(run_id: str) -> str:
    return f"{LINK_PREFIX}{run_id}b"


def veth_name(run_id: str, index: int) -> str:
    return f"{LINK_PREFIX}{run_id}v{index}"


def ifb_name(run_id: str, index: int) -> str:
    return f"{LINK_PREFIX}{run_id}i{index}"


def mac_address(run_id: str, index: int) -> str:
    """The MAC of endpoint ``index``'s interface: locally administered, unique among live
    runs, fixed before the interface exists (the switch's rules name it)."""
    octets = [0x02, *bytes.fromhex(run_id), 0, index]
    return ":".join(f"{o:02x}" for o in octets)


def table_name(run_id: str, name: str) -> str:
    """An nft table of run ``run_id`` in the machine's namespace (``infragym cleanup`` finds
    it by the run id in its name)."""
    safe = "".join(c if c.isalnum() else "_" for c in name)
    return f"{TABLE_PREFIX}{run_id}_{safe}"[:200]


def _run_id_after(prefix: str, name: str, kinds: str) -> str | None:
    """The run id that ``name`` carries right after ``prefix``, followed by one of
    ``kinds``; None if it carries none (it is not ours)."""
    rid, at = name[len(prefix) : len(prefix) + 6], len(prefix) + 6
    if name.startswith(prefix) and len(name) > at and name[at] in kinds and valid_run_id(rid):
        return rid
    return None


def run_id_of_table(name: str) -> str | None:
    return _run_id_after(TABLE_PREFIX, name, "_")


def run_id_of_link(name: str) -> str | None:
    return _run_id_after(LINK_PREFIX, name, LINK_KINDS)


def run_id_of_netns(name: str) -> str | None:
    return _run_id_after(NETNS_PREFIX, name, "-")


@dataclass
class RunRecord:
    run_id: str
    owner_pid: int
    owner_start: int | None
    subnet: str | None
    hosts: list[str] = field(default_factory=list)
    state: str = LIVE

    @property
    def path(self) -> Path:
        return STATE_DIR / f"{self.run_id}.json"

    def _json(self) -> str:
        data = asdict(self)
        if self.state == LIVE:
            del data["state"]
        return json.dumps(data)

    def save(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        tmp.write_text(self._json())
        tmp.replace(self.path)

    def claim(self) -> bool:
        """Create the record only if no run holds this id (atomically); False on a clash."""
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        return _create_exclusive(self.path, self._json())

    def mark_leaked(self) -> None:
        """Say that the owner is done with this run but could not remove all of it (the
        record stays for ``infragym cleanup``). Nothing if the record is gone already."""
        self.state = LEAKED
        if self.path.exists():
            self.save()

    def owner_alive(self) -> bool:
        start = pid_start_time(self.owner_pid)
        return start is not None and start == self.owner_start

    def in_use(self) -> bool:
        """Whether a live owner may still be using what this run made: cleanup must not
        touch it. A leaked run is finished even though its owner lives."""
        return self.state != LEAKED and self.owner_alive()

    @classmethod
    def load(cls, run_id: str) -> RunRecord | None:
        if not valid_run_id(run_id):
            return None
        try:
            data = json.loads((STATE_DIR / f"{run_id}.json").read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None

    def remove(self) -> None:
        if self.subnet is not None:
            release_subnet(self.subnet)
        self.path.unlink(missing_ok=True)


def all_records() -> list[RunRecord]:
    if not STATE_DIR.exists():
        return []
    out = []
    for p in STATE_DIR.glob("*.json"):
        rec = RunRecord.load(p.stem) if valid_run_id(p.stem) else None
        if rec is not None:
            out.append(rec)
    return out


def _subnet_lock(subnet: ipaddress.IPv4Network) -> Path:
    return STATE_DIR / "subnets" / str(subnet.network_address)


def _create_exclusive(path: Path, content: str) -> bool:
    """Write ``content`` to ``path`` only if it does not exist, never leaving it empty.

    The content is written to a private temporary file first and then hard-linked into
    place, so a reader (or a killed writer) never sees an empty or partial file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    tmp.write_text(content)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def allocate_subnet(run_id: str) -> ipaddress.IPv4Network:
    """Claim a free /24 of 198.18.0.0/15, so concurrent clusters never share addresses."""
    (STATE_DIR / "subnets").mkdir(parents=True, exist_ok=True)
    subnets = list(NETWORK.subnets(new_prefix=SUBNET_PREFIX))
    start = int(run_id, 16) % len(subnets)
    for i in range(len(subnets)):
        sn = subnets[(start + i) % len(subnets)]
        if _create_exclusive(_subnet_lock(sn), run_id):
            return sn
    raise ResourceError(
        f"all {len(subnets)} subnets of {NETWORK} are in use; "
        "run `infragym cleanup` to release those of dead runs"
    )


def release_subnet(subnet: str) -> None:
    try:
        sn = ipaddress.IPv4Network(subnet)
    except ValueError:
        return
    _subnet_lock(sn).unlink(missing_ok=True)


def subnet_owners() -> dict[str, str]:
    d = STATE_DIR / "subnets"
    if not d.exists():
        return {}
    out = {}
    for p in d.iterdir():
        if p.name.startswith("."):
            continue
        try:
            owner = p.read_text().strip()
        except OSError:
            continue
        out[p.name] = owner
    return out


def new_record(run_id: str, subnet: ipaddress.IPv4Network | None, hosts: list[str]) -> RunRecord:
    pid = os.getpid()
    return RunRecord(
        run_id, pid, pid_start_time(pid), None if subnet is None else str(subnet), hosts
    )


def claim_record(run_id: str, hosts: list[str]) -> RunRecord:
    """Claim ``run_id``, or a fresh id if another run holds it, before anything is made."""
    for _ in range(64):
        rec = new_record(run_id, None, hosts)
        if rec.claim():
            return rec
        run_id = new_run_id()
    raise ResourceError(
        f"could not claim a free run id in {STATE_DIR}; "
        "run `infragym cleanup` to remove the records of dead runs"
    )
