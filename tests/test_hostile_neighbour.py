"""One episode cannot ruin another's reward: gradings share one process (as
``rollout_many`` runs them), so a service answering garbage must not starve its neighbour.

Real gradings of kv-replicated, side by side on seed 1: the robust reference beside a
service that passes the functional tests and then answers every read of the load with
1 MiB of non-UTF-8 bytes, different each time (``tests/hostile``). Before values were
digested instead of decoded (0.2 s of CPU per MiB, holding the GIL) the robust reference
scored 0.600 there instead of its solo 1.000.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from conftest import needs_root

from infragym.grading import grade_workspace
from infragym.history import History, is_digest
from infragym.tasks import find_task

TASK = find_task("kv-replicated")
HOSTILE = Path(__file__).parent / "hostile"
SEED = 1
ROBUST_SOLO = 1.0  # the robust reference's reward on seed 1 graded alone
KEYS = {f"k{i}" for i in range(12)}  # the load's hot keys, whose reads hostile.py replaces


def hostile_workspace(root: Path, mode: str) -> Path:
    ws = root / f"hostile-{mode}"
    ws.mkdir()
    shutil.copy(TASK.solution("robust") / "server.py", ws / "server.py")
    for name in ("hostile.py", "start.sh"):
        shutil.copy(HOSTILE / name, ws / name)
    (ws / "mode").write_text(mode + "\n")
    return ws


@needs_root
@pytest.mark.parametrize("mode", ["invalid-utf8", "big"])
def test_a_service_answering_garbage_does_not_change_its_neighbours_reward(
    tmp_path: Path, mode: str
) -> None:
    """``invalid-utf8``: 1 MiB of non-UTF-8 per read; ``big``: 4 MiB per read (refused
    unread, so every such read fails)."""
    hostile = hostile_workspace(tmp_path, mode)

    async def side_by_side():  # type: ignore[no-untyped-def]
        return await asyncio.gather(
            grade_workspace(TASK, TASK.solution("robust"), SEED, tmp_path / "robust"),
            grade_workspace(TASK, hostile, SEED, tmp_path / "hostile"),
        )

    robust, bad = asyncio.run(side_by_side())
    assert robust.error is None and bad.error is None, (robust.error, bad.error)
    assert robust.reward is not None and robust.reward >= ROBUST_SOLO - 0.01, robust.notes
    # the hostile service passed the contract and was graded under load, on garbage
    assert bad.functional == 1.0 and bad.reward is not None and bad.reward < 0.5, bad.notes
    assert bad.history_path is not None
    history = History.read_jsonl(bad.history_path)
    reads = [op for op in history.operations() if op.f == "read" and op.key in KEYS]
    if mode == "invalid-utf8":
        garbage = [op.result for op in reads if op.ok]
        assert garbage and all(is_digest(r) for r in garbage if r is not None and r[:1] == "<")
    else:
        refused = [op for op in reads if not op.ok and "1 MiB" in (op.error or "")]
        assert refused, "the 4 MiB answers were not refused as oversize"
    assert Path(bad.history_path).stat().st_size < 8 << 20
