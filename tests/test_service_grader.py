"""The ServiceGrader skeleton on a tiny service task: deploy by the contract, functional
gate, load under a schedule, heal, final reads, checkers, rubric, and the same reward from
the stored history offline. (kv-replicated's grader is the large user; this one runs in
seconds.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import needs_root
from servicetask import GRADER, SERVER, service_task

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


# answers 503 to the first read of each key: its final reads go unanswered once
SHY_SERVER = SERVER.replace(
    "    def do_GET(self):\n",
    "    def do_GET(self):\n"
    "        if self.path not in SEEN:\n"
    "            SEEN.add(self.path); self.send_response(503)\n"
    "            self.send_header('Content-Length', '0'); self.end_headers(); return\n",
).replace("STORE = {}", "STORE = {}; SEEN = set()")


@needs_root
def test_a_final_read_that_got_no_answer_is_read_again_before_writes_are_judged(
    tmp_path: Path,
) -> None:
    # the load writes only; the serving gate lowered: each key's first final read (a 503)
    # counts in the steady state, which holds only ~40 operations here
    grader = GRADER.replace("mix=Mix(1, 1)", "mix=Mix(0, 1)").replace(
        'Availability(slo=0.9, scope="steady"', 'Availability(slo=0.5, scope="steady"'
    )
    assert "slo=0.5" in grader
    d = service_task(tmp_path, grader)
    (d / "solutions" / "robust" / "start.sh").write_text(f"exec python3 -c '{SHY_SERVER}'\n")
    r = graded(d, "robust", tmp_path)
    # every key's first final read is a 503; read again, each is judged, none lost (with
    # no retry, final_retries=0, this grading scores 0.0: lost-writes unknown)
    assert r.error is None and r.reward == 1.0, r.notes
    history = History.read_jsonl(Path(r.history_path or ""))
    streams = [m["name"] for m in history.meta["workload"]]
    assert streams[-2:] == ["final-read", "final-read-2"], streams
    reads = [op for op in history.operations() if op.f == "read"]
    keys = {op.key for op in reads}
    assert len(keys) >= 3, keys
    for key in keys:  # a 503, then an answer
        mine = [op for op in reads if op.key == key]
        assert not mine[0].ok and mine[-1].ok, mine
    assert not any("got no answer" in n for n in r.notes), r.notes


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
