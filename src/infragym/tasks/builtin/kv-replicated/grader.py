"""Hidden grader of kv-replicated, a :class:`~infragym.grading.ServiceGrader`: deploy
``/bin/sh /srv/app/start.sh`` on the variant's hosts (3 or 5, fresh) by [contract.env]
(listening on the variant's port within 10 s, answering a read within 10 s more); the
functional tests an agent can run on its dev hosts, up to the variant's longest key and
largest value (any failure fails the gate); then open-loop reads and writes on hot keys,
a write of a new key every 0.2 s and bursts of them around each fault's start, each key
written once (so fault windows hold acknowledged writes no later write can hide), under a
balanced schedule (two crashes of different hosts, two pauses, two partitions, every host
taken away once); heal, final reads of every key on every node, checkers and ``rubric``.
``recheck(history)`` gives the same reward offline. The seed draws the variant (told to
the service, as to the agent) and the fault schedule; the tests' tag and the workload's
seed are fresh randomness (recorded).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

from infragym.checkers import Availability, Checker, Linearizable, LostWrites, StaleReads
from infragym.grading import (
    Contract,
    Functional,
    GradeContext,
    GradeOutcome,
    Phases,
    ServiceGrader,
    env_from_spec,
    kv_functional_tests,
)
from infragym.history import History
from infragym.nemesis import Schedule, balanced_schedule
from infragym.rubric import Criterion, RewardResult, Rubric, all_or_nothing, gate, linear
from infragym.tasks import Variant, load_task
from infragym.workload import (
    KVGenerator,
    Mix,
    Stream,
    Target,
    WriteOnce,
    final_read_stream,
    keys_written,
    parse_targets,
)

TASK = load_task(Path(__file__).parent)
START_CMD = ("/bin/sh", "/srv/app/start.sh")
RATE = 60.0
OP_TIMEOUT_S = 1.0
HOT_KEYS = 12
COLD_EVERY_S = 0.2  # one write-once key this often, through the whole load
MIN_COLD_ACKED = 12  # lost-writes judges at least this many acknowledged write-once keys
WRITE_ONCE = r"(f\d+)?c\d+"  # their names (the hot keys are k0, k1, ...)
BURST, BURST_RATE = 12, 40.0  # write-once keys in the 0.3 s around each fault's start
AVAILABILITY_SLO = 0.99
AVAILABILITY_FLOOR = 0.5
SERVING_SLO = 0.9
FAILOVER_FLOOR = 0.2  # a SPOF serves ~0 %; a ~1 s failover pays in availability, not the cap
NAIVE_CAP = 0.25
CHECK_BUDGET_S = 20.0


def rubric() -> Rubric:
    """Gates first, then weighted properties; every check must have judged something.

    - functional (gate, cap 0): every functional test passes.
    - serving (gate, cap 0): outside fault windows >= 90 % of requests are answered ok; a
      service that passes the tests and then refuses everything has shown nothing.
    - no-spof (gate, cap 0.25): in every fault window the hosts it left healthy answer
      >= 20 % ok; every host is taken away once per run, so a service whose data or
      leadership lives on one host (~0 % there) fails this whatever the seed.
    - linearizable (gate, cap 0.25; weight 2): stale or lost data earns at most 0.25.
    - lost-writes (gate, cap 0.25; weight 3, all or nothing): one acknowledged write lost
      is a broken promise, not 99 % durability. Write-once keys are written all through the
      load, fault windows included, so a write acknowledged before a majority held it and
      then lost cannot hide behind a later write of the same key.
    - stale-reads (weight 1, fraction of clean reads).
    - availability (weight 4): ok fraction of the operations sent to hosts the fault left
      healthy, in the worst window; 0 at 50 %, full at 99 % (over 1 s counts as down).
      Serving, no-spof and availability judge the load's operations: the final reads, a
      burst several times the load's rate, collect state (values), not availability.
    """
    return Rubric(
        [
            gate("functional"),
            gate("serving", min_judged=50),
            gate("no-spof", cap=NAIVE_CAP, min_judged=50),
            Criterion("linearizable", weight=2.0, gate=True, cap=NAIVE_CAP, min_judged=50),
            Criterion(
                "lost-writes",
                weight=3.0,
                gate=True,
                cap=NAIVE_CAP,
                score_fn=all_or_nothing,
                min_judged=MIN_COLD_ACKED,
            ),
            Criterion("stale-reads", weight=1.0, min_judged=20),
            Criterion(
                "availability",
                weight=4.0,
                score_fn=linear(AVAILABILITY_FLOOR, AVAILABILITY_SLO, "worst_availability"),
                min_judged=50,
            ),
        ]
    )


def checkers(budget_s: float = CHECK_BUDGET_S) -> list[Checker]:
    """The checks of the robustness phase, by the names :func:`rubric` reads."""
    return [
        Linearizable(time_budget_s=budget_s),
        LostWrites(counted=WRITE_ONCE),
        StaleReads(),
        Availability(slo=AVAILABILITY_SLO, exclude_faulted=True),
        Availability(slo=SERVING_SLO, scope="steady", name="serving"),
        Availability(slo=FAILOVER_FLOOR, scope="faults", exclude_faulted=True, name="no-spof"),
    ]


def fault_schedule(seed: int, hosts: list[str]) -> Schedule:
    """Two crashes (of different hosts), two pauses, two partitions, in a seeded order, one
    at a time with quiet gaps, every host taken away at least once."""
    return balanced_schedule(seed, hosts, rounds=2, salt="kv-replicated")


def workload(
    urls: Mapping[str, str], seed: int, duration: float, schedule: Schedule | None = None
) -> list[Stream]:
    """Reads and writes on the hot keys for the whole run; a write of a new key every
    ``COLD_EVERY_S`` through the whole run too, round-robin over the hosts, each key once;
    and a burst of new keys in the 0.3 s around each fault's start, when a write
    acknowledged before a majority holds it is lost with the host that acknowledged it."""
    targets = parse_targets(urls)
    hot = KVGenerator(urls, seed=seed, mix=Mix(read=0.5, write=0.5), keys=HOT_KEYS, choice="random")
    count = int(duration / COLD_EVERY_S) + 1
    cold = WriteOnce(targets, [f"c{i}" for i in range(count)], name="cold")
    streams = [
        Stream(hot, rate=RATE, duration=duration, timeout=OP_TIMEOUT_S),
        Stream(cold, rate=1 / COLD_EVERY_S, max_ops=count, timeout=OP_TIMEOUT_S),
    ]
    for j, f in enumerate(schedule.faults if schedule else ()):
        burst = WriteOnce(targets, [f"f{j}c{i}" for i in range(BURST)], name=f"cold-f{j}")
        start = max(0.0, f.at - (BURST - 2) / BURST_RATE)
        streams.append(Stream(burst, BURST_RATE, max_ops=BURST, start=start, timeout=OP_TIMEOUT_S))
    return streams


def final_reads(history: History, targets: Sequence[Target], timeout: float) -> Stream:
    """Every hot key on every host; each write-once key once, on the hosts in turn (~200
    of them: on every host they would be a read burst several times the load's rate)."""
    once = [k for k in keys_written(history) if re.fullmatch(WRITE_ONCE, k)]
    return final_read_stream(history, targets, timeout=timeout, spread=once)


def service(v: Variant, schedule: Schedule | None = None) -> ServiceGrader:
    """The grader of one variant: its port and hosts' contract, its limits' tests (and the
    write-once bursts around ``schedule``'s faults)."""
    tests = kv_functional_tests(int(v["max_key_len"]), int(v["max_value_bytes"]))
    env = env_from_spec(TASK.spec, v)
    return ServiceGrader(
        contract=Contract(START_CMD, int(v["port"]), env, name="kv", listen_s=10.0),
        functional=Functional(tests, prefix="/kv/", ready_path="fx-ready-{tag}"),
        workload=partial(workload, schedule=schedule),
        checkers=checkers,
        final_reads=final_reads,
        rubric=rubric(),
        phases=Phases(
            tail_s=1.5,
            settle_s=2.0,
            listen_s=10.0,
            check_budget_s=CHECK_BUDGET_S,
            final_reads_judged=False,
        ),
        transport="lean",
    )


async def grade(ctx: GradeContext) -> GradeOutcome:
    n = len(ctx.variant.host_names)
    ctx.progress(f"building a {n}-host cluster and starting the service on every host")
    cluster = ctx.cluster()  # the variant's hosts
    schedule = fault_schedule(ctx.seed, cluster.names)
    return await service(ctx.variant, schedule).grade(ctx, cluster, schedule)


def recheck(history: History, budget_s: float = CHECK_BUDGET_S) -> RewardResult:
    """The reward of a stored history, offline: the same checks and rubric as ``grade``
    (neither depends on the variant)."""
    return service(TASK.spec.variant()).recheck(history, budget_s)
