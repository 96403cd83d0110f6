"""The ServiceGrader skeleton on a tiny service task: deploy by the contract, functional
gate, load under a schedule, heal, final reads, checkers, rubric, and the same reward from
the stored history offline. (kv-replicated's grader is the large user; this one runs in
seconds.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import needs_root
from tinytask import tiny_task

from infragym.checkers import CheckResult, Verdict
from infragym.grading import (
    GradeResult,
    finish,
    functional_of,
    grade_workspace,
    load_recheck,
    recheck,
    record_functional,
)
from infragym.history import History
from infragym.rubric import Criterion, Rubric, gate
from infragym.tasks import load_task

SERVER = r"""
import http.server, os
STORE = {}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        v = STORE.get(self.path)
        self.send_response(404 if v is None else 200)
        body = (v or b"") + os.environ["SUFFIX"].encode()
        self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_PUT(self):
        STORE[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
"""

GRADER = """
from pathlib import Path

from infragym.checkers import Availability, LostWrites
from infragym.grading import Contract, Functional, Phases, ServiceGrader, env_from_spec
from infragym.nemesis import balanced_schedule
from infragym.rubric import Criterion, Rubric, gate
from infragym.tasks import load_task
from infragym.workload import KVGenerator, Mix, Stream

START_CMD = ("/bin/sh", "/srv/app/start.sh")


async def t_put_get(p):
    await p.put_visible("n1", "fx", "hello " + p.tag)


SERVICE = ServiceGrader(
    contract=Contract(START_CMD, 8080, env_from_spec(load_task(Path(__file__).parent).spec),
                      listen_s=5.0),
    functional=Functional([("put-get", t_put_get)], prefix="/kv/", ready_path="r-{tag}"),
    workload=lambda urls, seed, s: [Stream(KVGenerator(urls, seed=seed, mix=Mix(1, 1), keys=3),
                                           rate=20, duration=s, timeout=0.5)],
    checkers=lambda budget: [LostWrites(), Availability(slo=0.9, scope="steady", name="serving")],
    rubric=Rubric([gate("functional"), gate("serving", min_judged=5),
                   Criterion("lost-writes", min_judged=1)]),
    phases=Phases(tail_s=0.5, settle_s=0.2, listen_s=5.0, check_budget_s=5.0),
)


async def grade(ctx):
    cluster = ctx.cluster(1)
    schedule = balanced_schedule(ctx.seed, cluster.names, kinds=("pause",), rounds=1,
                                 first_at=1.0, duration=(0.5, 0.5))
    return await SERVICE.grade(ctx, cluster, schedule)


def recheck(history):
    return SERVICE.recheck(history)
"""

CONTRACT = '\n[contract.env]\nPORT = "8080"\nSUFFIX = ""\nNODE = "{node_id}"\n'


def service_task(root: Path, grader: str = GRADER) -> Path:
    d = tiny_task(root, name="tiny-service", dev_hosts=0, grader=grader)
    with (d / "task.toml").open("a") as f:
        f.write(CONTRACT)
    for ws, start in (("robust", f"exec python3 -c '{SERVER}'"), ("broken", "echo no; exit 3")):
        (d / "solutions" / ws).mkdir(exist_ok=True)
        (d / "solutions" / ws / "start.sh").write_text(start + "\n")
    (d / "workspace" / "start.sh").write_text("exit 1\n")
    return d


def graded(task_dir: Path, tier: str, out: Path) -> GradeResult:
    task = load_task(task_dir)
    return asyncio.run(grade_workspace(task, task.solution(tier), 1, out / tier))


@needs_root
def test_the_skeleton_grades_a_service_and_rechecks_it_offline(tmp_path: Path) -> None:
    d = service_task(tmp_path)
    r = graded(d, "robust", tmp_path)
    assert r.error is None and r.reward == 1.0, r.notes
    assert r.functional == 1.0 and r.detail is not None
    assert set(r.breakdown) == {"functional", "serving", "lost-writes"}
    art = Path(r.artifacts_dir or "")
    for name in ("functional.json", "schedule.json", "workload.json", "history.jsonl"):
        assert (art / name).is_file(), name
    assert any(n.startswith("faults: 1.0s pause(n1) 0.5s") for n in r.notes), r.notes
    assert any(n.startswith("workload: ") for n in r.notes), r.notes
    assert [e.label for e in History.read_jsonl(art / "history.jsonl").faults] == ["pause-1"] * 2
    history = History.read_jsonl(Path(r.history_path or ""))
    assert history.meta["functional"] == {"tests": {"put-get": None}, "problem": None}
    check = load_recheck(load_task(d))
    assert check is not None and check(history).reward == r.reward
    streams = [m["name"] for m in history.meta["workload"]]
    assert "final-read" in streams, streams  # every written key read back after the heal

    broken = graded(d, "broken", tmp_path)
    assert broken.reward == 0.0 and broken.functional == 0.0, broken.notes
    assert any("exited with status 3" in n and "no" in n for n in broken.notes), broken.notes
    assert broken.detail is not None
    skipped = {c.name: c.verdict for c in broken.detail.breakdown if c.name != "functional"}
    assert skipped == {"serving": Verdict.UNKNOWN, "lost-writes": Verdict.UNKNOWN}
    assert not (Path(broken.artifacts_dir or "") / "schedule.json").exists(), "no fault phase"
    stored = History.read_jsonl(Path(broken.history_path or ""))
    assert check(stored).reward == 0.0


@needs_root
def test_a_service_without_state_to_read_back_skips_the_final_reads(tmp_path: Path) -> None:
    grader = GRADER.replace("    phases=Phases(", "    final_reads=None,\n    phases=Phases(")
    grader = grader.replace('Criterion("lost-writes", min_judged=1)', 'Criterion("lost-writes")')
    r = graded(service_task(tmp_path, grader), "robust", tmp_path)
    assert r.error is None and r.functional == 1.0, r.notes
    history = History.read_jsonl(Path(r.history_path or ""))
    streams = [m["name"] for m in history.meta["workload"]]
    assert streams and "final-read" not in streams, streams


RUBRIC = Rubric([gate("functional"), Criterion("durable")])


def test_recheck_takes_the_functional_gate_from_the_history() -> None:
    h = History()
    assert functional_of(h).verdict is Verdict.UNKNOWN  # recorded nothing: not a pass
    r = recheck(h, [], RUBRIC)
    assert r.reward == 0.0 and r.criterion("durable").verdict is Verdict.UNKNOWN
    assert "not run: the functional contract failed" in r.criterion("durable").explanation
    res = record_functional(h, {"a": None, "b": "GET /x answered 500"}, None)
    assert res.verdict is Verdict.FAIL and res.score == 0.5
    assert functional_of(h).score == 0.5 and recheck(h, [], RUBRIC).reward == 0.0
    record_functional(h, {"a": None}, None)
    assert functional_of(h).verdict is Verdict.PASS
    with pytest.raises(Exception, match="durable"):
        recheck(h, [], RUBRIC)  # a passed gate needs the checkers' results


def test_finish_scores_and_writes_one_note_per_criterion() -> None:
    results = {
        "functional": CheckResult("functional", Verdict.PASS, 1.0, "all passed", judged=1),
        "durable": CheckResult("durable", Verdict.FAIL, 0.5, "lost " + "x" * 400, judged=9),
    }
    out = finish(RUBRIC, results, 1.0, ["before"])
    assert out.reward.reward == 0.5 and out.functional == 1.0
    assert out.notes[0] == "before" and out.notes[1] == "functional: pass, score 1.000: all passed"
    assert out.notes[2].startswith("durable: fail, score 0.500: lost xxx")
    assert len(out.notes[2]) == len("durable: fail, score 0.500: ") + 300
