"""A live episode whose clients write (``workload = "kv"``), on the test task
``tests/tasks/live-kv``: the clients stop before the audit, whose ``ctx.lost_writes()``
reads every key written and judges every acknowledged write; a crash that wipes the
store's log loses writes and the audit says so."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_no_leftovers, needs_root

from infragym.env import ToolCall, make
from infragym.history import History
from infragym.tasks import load_task, validate_task

TASK = Path(__file__).parent / "tasks" / "live-kv"


def _edited(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    dest = tmp_path / TASK.name
    shutil.copytree(TASK, dest)
    text = (dest / "task.toml").read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new, 1)
    (dest / "task.toml").write_text(text)
    return dest


def test_the_writing_workload_is_declared_and_checked(tmp_path: Path) -> None:
    op = load_task(TASK).spec.operate
    assert op is not None and (op.workload, op.keys, op.writes) == ("kv", 12, 0.6)
    bad = validate_task(_edited(tmp_path / "a", ('workload = "kv"', 'workload = "sql"')))
    assert any("operate.workload must be one of probe, kv, not 'sql'" in p for p in bad), bad
    assert any('operate.keys needs workload = "kv"' in p for p in bad), bad
    bad = validate_task(_edited(tmp_path / "b", ("writes = 0.6", "writes = 0")))
    assert any("operate.writes must be a number in [0.01, 1]" in p for p in bad), bad


def _episode(task: Path, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    env = make(str(task), artifacts_dir=str(tmp_path / "art"))

    async def main() -> tuple[str, dict[str, Any]]:
        await env.reset(seed=1)
        assert env.live is not None and env.live.cluster is not None
        run_id = env.live.cluster.run_id
        try:
            r = await env.step(ToolCall("end_phase", {"summary": "watched it"}))
        finally:
            await env.close()
        assert r.terminated
        return run_id, dict(r.info)

    return asyncio.run(main())


@needs_root
@pytest.mark.timeout(120)
def test_the_audit_judges_every_acknowledged_write_of_a_durable_store(tmp_path: Path) -> None:
    run_id, info = _episode(TASK, tmp_path)
    assert_no_leftovers(run_id)
    audit = info["episode"]["audit"]
    assert audit["breakdown"]["acknowledged"] > 0
    assert audit["breakdown"]["lost"] == 0 and audit["breakdown"]["unjudged"] == 0
    assert audit["reward"] == 1.0, audit["notes"]
    history = History.read_jsonl(info["grade"].history_path)
    ops = history.operations()
    writes = [op for op in ops if op.f == "write"]
    assert writes and {op.node for op in ops} == {"n1"}
    # the final reads came after the last write: every key written was read back
    last_write = max(op.invoke for op in writes)
    finals = [op for op in ops if op.f == "read" and op.invoke > last_write]
    assert {op.key for op in finals} == {op.key for op in writes}
    # the service level ends with the clients, before the audit's reads
    assert info["episode"]["service"]["total"] < len(ops)


@needs_root
@pytest.mark.timeout(120)
def test_a_crash_that_wipes_the_log_loses_writes_and_the_audit_fails(tmp_path: Path) -> None:
    task = _edited(
        tmp_path,
        ("keys = 12", "keys = 400"),
        (
            "grade_s = 20",
            'grade_s = 20\nfaults = [{ kind = "damaged-data", host = "n1", at = 1.5, '
            'params = { files = [{ path = "kv.log", how = "truncate", keep = 0.0 }] } }]',
        ),
    )
    run_id, info = _episode(task, tmp_path)
    assert_no_leftovers(run_id)
    audit = info["episode"]["audit"]
    assert audit["breakdown"]["lost"] > 0, audit
    assert audit["reward"] == 0.0 and audit["notes"][0].startswith("fail:")
    (apply,) = [e for e in info["grade"].timeline if e["action"] == "apply"]
    assert apply["fault"] == "damaged-data"
