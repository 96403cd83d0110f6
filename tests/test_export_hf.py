"""`infragym export RUN_DIR --format hf-dataset`: a directory `datasets` loads, rows exact.

Loads use the real `datasets` package, offline, with its caches under tmp_path and every
network connection refused (a lookup on the Hub would be a bug, and a hang here).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import needs_root
from tinytask import WORKSPACE_GRADER, tiny_task

from infragym import ConfigError, rollout_many
from infragym.agent import OpenAIAgent, ScriptedAgent
from infragym.cli.main import main
from infragym.env import ToolCall
from infragym.runner import (
    TRAJECTORIES_FILE,
    Trajectory,
    export_hf_dataset,
    hf_features,
    read_trajectories,
)
from infragym.testing import Call, Reply, ScriptedModelServer

# An OpenAI-format transcript as infragym's agents record it: a system prompt, an
# assistant turn with two tool calls (JSON-text arguments with quotes, newlines and
# non-ASCII), tool results answering them by id, a text-only assistant turn (no
# tool_calls key at all), an empty-content turn with a call, a tool message whose
# tool_call_id is null, and a tool call with a key outside the OpenAI set ("index").
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are an operator. Use the tools."},
    {"role": "user", "content": "Write 42 to answer.txt — then submit.\n"},
    {
        "role": "assistant",
        "content": "Writing it, then checking.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {
                    "name": "write_file",
                    "arguments": json.dumps({"path": "answer.txt", "content": '42\n"é" ✓\n'}),
                },
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "bash", "arguments": '{"command": "cat answer.txt"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "wrote 12 bytes"},
    {"role": "tool", "tool_call_id": "call_2", "content": '42\n"é" ✓\n[exit 0]'},
    {"role": "assistant", "content": "Looks right."},
    {"role": "user", "content": "You did not call a tool (1 of 3)."},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_3",
                "type": "function",
                "function": {"name": "submit", "arguments": "{}"},
                "index": 0,
            }
        ],
    },
    {"role": "tool", "tool_call_id": None, "content": "submitted"},
]

# MESSAGES as the `messages` column holds them, written out by hand
CANONICAL: list[dict[str, Any]] = [
    {"role": "system", "content": "You are an operator. Use the tools.",
     "tool_calls": None, "tool_call_id": None},
    {"role": "user", "content": "Write 42 to answer.txt — then submit.\n",
     "tool_calls": None, "tool_call_id": None},
    {"role": "assistant", "content": "Writing it, then checking.",
     "tool_calls": [
         {"id": "call_1", "type": "function",
          "function": {"name": "write_file",
                       "arguments": '{"path": "answer.txt", "content": "42\\n\\"\\u00e9\\" '
                                    '\\u2713\\n"}'}},
         {"id": "call_2", "type": "function",
          "function": {"name": "bash", "arguments": '{"command": "cat answer.txt"}'}}],
     "tool_call_id": None},
    {"role": "tool", "content": "wrote 12 bytes", "tool_calls": None, "tool_call_id": "call_1"},
    {"role": "tool", "content": '42\n"é" ✓\n[exit 0]', "tool_calls": None,
     "tool_call_id": "call_2"},
    {"role": "assistant", "content": "Looks right.", "tool_calls": None, "tool_call_id": None},
    {"role": "user", "content": "You did not call a tool (1 of 3).", "tool_calls": None,
     "tool_call_id": None},
    {"role": "assistant", "content": "",
     "tool_calls": [{"id": "call_3", "type": "function",
                     "function": {"name": "submit", "arguments": "{}"}}],
     "tool_call_id": None},
    {"role": "tool", "content": "submitted", "tool_calls": None, "tool_call_id": None},
]  # fmt: skip

# every tool has its own parameter schema (Arrow would merge them into one struct)
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "bash", "description": "Run a command.",
        "parameters": {"type": "object",
                       "properties": {"command": {"type": "string"},
                                      "timeout": {"type": "number", "exclusiveMinimum": 0,
                                                  "maximum": 0.1 + 0.2}},
                       "required": ["command"]}}},
    {"type": "function", "function": {
        "name": "host_bash", "description": "On a dev host.",
        "parameters": {"type": "object",
                       "properties": {"host": {"type": "string", "enum": ["n1", "n2"]},
                                      "background": {"type": "boolean", "default": False}},
                       "required": ["host"]}}},
    {"type": "function", "function": {
        "name": "submit", "description": "Submit.",
        "parameters": {"type": "object", "properties": {}}}},
]  # fmt: skip


def canonical(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The documented canonical form, written independently of the exporter."""
    return [
        {
            "role": m.get("role"),
            "content": m.get("content"),
            "tool_calls": None if m.get("tool_calls") is None else [
                {"id": c.get("id"), "type": c.get("type"),
                 "function": {"name": c["function"].get("name"),
                              "arguments": c["function"].get("arguments")}}
                for c in m["tool_calls"]],
            "tool_call_id": m.get("tool_call_id"),
        }
        for m in messages
    ]  # fmt: skip


def test_the_hand_written_canonical_form_is_the_documented_one() -> None:
    assert canonical(MESSAGES) == CANONICAL


def write_run(run_dir: Path, trajectories: list[Trajectory]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / TRAJECTORIES_FILE).open("a", encoding="utf-8") as fh:
        for t in trajectories:
            fh.write(t.model_dump_json() + "\n")
    return run_dir


def episodes() -> list[Trajectory]:
    """Three graded episodes with rewards that 10-decimal rounding would change, and a
    platform failure."""
    usage = [
        {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        {"prompt_tokens": 150, "completion_tokens": 5, "total_tokens": 155},
    ]
    return [
        Trajectory(task="tiny", seed=1, agent="openai:m", model="m", messages=MESSAGES,
                   tools=TOOLS, usage=usage, reward=1 / 3, functional=0.1 + 0.2,
                   breakdown={"answer": 1 / 3, "robust": 2 / 3}, end_reason="submit",
                   wall_s=12.345678901234),
        Trajectory(task="tiny", seed=2, agent="reference:robust",
                   messages=[{"role": "user", "content": "Write 42."}], tools=TOOLS[2:],
                   reward=1.2345e-15, end_reason="max_steps"),
        Trajectory(task="other", seed=3, agent="openai:m", model="m", messages=MESSAGES[:2],
                   usage=[{"prompt_tokens": None, "completion_tokens": 3}], reward=1.0,
                   breakdown={"x": 1.0}, end_reason="no_tool_call"),
        Trajectory(task="tiny", seed=4, agent="openai:m", model="m", messages=MESSAGES,
                   reward=None, error="grader bug on seed 4"),
    ]  # fmt: skip


@pytest.fixture
def hf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """The `datasets` module, offline, caching under tmp_path, with no network at all."""
    cache = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(cache))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache / "datasets"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    # datasets reads the variables once, at import: another test may have imported it
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_CACHE_HOME", str(cache))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache / "datasets")
    monkeypatch.setattr(datasets.config, "HF_MODULES_CACHE", cache / "modules")
    yield datasets


class NetworkUsed(AssertionError):
    pass


def block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise NetworkUsed(f"tried to connect to {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    block_network(monkeypatch)


def load_dir(hf: Any, out: Path, tmp_path: Path) -> Any:
    return hf.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "hf-cache"))


def check_rows(rows: list[dict[str, Any]], trajectories: list[Trajectory]) -> None:
    graded = {t.id: t for t in trajectories if t.reward is not None}
    assert sorted(r["id"] for r in rows) == sorted(graded)  # failures left out
    for row in rows:
        t = graded[row["id"]]
        assert row["messages"] == canonical(t.messages)
        assert json.loads(row["messages_json"]) == t.messages  # the record, exactly
        assert json.loads(row["tools_json"]) == t.tools
        assert json.loads(row["breakdown_json"]) == t.breakdown
        assert row["reward"] == t.reward  # exact: no rounding of floats
        assert row["functional"] == t.functional and row["wall_s"] == t.wall_s
        assert (row["task"], row["seed"], row["agent"], row["model"], row["end_reason"]) == (
            t.task,
            t.seed,
            t.agent,
            t.model,
            t.end_reason,
        )
        assert row["platform_version"] == t.platform_version


def test_load_dataset_round_trips_every_episode_exactly(
    hf: Any, no_network: None, tmp_path: Path
) -> None:
    trajs = episodes()
    run = write_run(tmp_path / "run", trajs)
    out = tmp_path / "out"
    assert export_hf_dataset(run, out) == 3
    assert (out / "README.md").is_file() and (out / "data" / "train.jsonl").is_file()

    ds = load_dir(hf, out, tmp_path)
    assert ds.features == hf_features()  # the card's schema, not one inferred from rows
    rows = list(ds)
    check_rows(rows, trajs)
    by_seed = {r["seed"]: r for r in rows}
    assert by_seed[1]["messages"] == CANONICAL
    assert by_seed[1]["reward"] == 1 / 3 and by_seed[2]["reward"] == 1.2345e-15
    assert (
        json.loads(by_seed[1]["tools_json"])[0]["function"]["parameters"]["properties"]["timeout"][
            "maximum"
        ]
        == 0.1 + 0.2
    )
    # token counts: summed, null when the server did not count every request
    assert (by_seed[1]["prompt_tokens"], by_seed[1]["completion_tokens"]) == (250, 25)
    assert (by_seed[2]["prompt_tokens"], by_seed[2]["completion_tokens"]) == (None, None)
    assert (by_seed[3]["prompt_tokens"], by_seed[3]["completion_tokens"]) == (None, 3)
    # the text-only assistant turn has no tool_calls key in the record, null in the column
    assert "tool_calls" not in MESSAGES[5] and by_seed[1]["messages"][5]["tool_calls"] is None


def test_from_json_reads_the_data_file_exactly(hf: Any, no_network: None, tmp_path: Path) -> None:
    trajs = episodes()
    out = tmp_path / "out"
    export_hf_dataset(write_run(tmp_path / "run", trajs), out)
    data = str(out / "data" / "train.jsonl")
    inferred = hf.Dataset.from_json(data, cache_dir=str(tmp_path / "c1"))
    check_rows(list(inferred), trajs)
    typed = hf.Dataset.from_json(data, features=hf_features(), cache_dir=str(tmp_path / "c2"))
    assert typed.features == hf_features()
    check_rows(list(typed), trajs)


def test_the_schema_is_declared_not_inferred(hf: Any, no_network: None, tmp_path: Path) -> None:
    # every optional column null: inferred from the rows they would have no type at all
    t = Trajectory(task="tiny", seed=1, agent="noop", messages=[], reward=0.0)
    out = tmp_path / "out"
    export_hf_dataset(write_run(tmp_path / "run", [t]), out)
    ds = load_dir(hf, out, tmp_path)
    assert ds.features == hf_features()
    assert ds.features["functional"] == hf.Value("float64")
    assert ds.features["prompt_tokens"] == hf.Value("int64")
    assert ds[0]["messages"] == [] and ds[0]["model"] is None
    card = (out / "README.md").read_text()
    assert card.startswith("---\ndataset_info:\n  features:\n") and "configs:" not in card


def test_a_new_export_is_loaded_fresh_not_from_the_cache(
    hf: Any, no_network: None, tmp_path: Path
) -> None:
    """datasets keys its cache on the card's `configs` when there is one, not on the files:
    two exports of the same name would load the same rows. The card has no `configs`."""
    a, b = tmp_path / "a", tmp_path / "b"

    def seeds(out: Path) -> list[int]:
        return sorted(r["seed"] for r in load_dir(hf, out, tmp_path))

    one = [Trajectory(task="t", seed=s, agent="x", messages=[], reward=1.0) for s in (1, 2)]
    export_hf_dataset(write_run(a, one), a / "export.hf")
    assert seeds(a / "export.hf") == [1, 2]
    two = [Trajectory(task="t", seed=s, agent="x", messages=[], reward=1.0) for s in (5, 6)]
    export_hf_dataset(write_run(b, two), b / "export.hf")
    assert seeds(b / "export.hf") == [5, 6]  # another run's export of the same name
    write_run(a, [Trajectory(task="t", seed=3, agent="x", messages=[], reward=0.5)])
    assert export_hf_dataset(a, a / "export.hf") == 3  # replaces the earlier export
    assert seeds(a / "export.hf") == [1, 2, 3]


def test_what_is_refused_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no trajectories\.jsonl"):
        export_hf_dataset(tmp_path / "nothing-here", tmp_path / "out")
    failed = Trajectory(task="t", seed=1, agent="x", messages=[], reward=None, error="boom")
    run = write_run(tmp_path / "run", [failed])
    with pytest.raises(ConfigError, match=r"no graded episode .*1 platform failure"):
        export_hf_dataset(run, tmp_path / "out")
    assert not (tmp_path / "out").exists()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes\n")
    graded = Trajectory(task="t", seed=2, agent="x", messages=MESSAGES, reward=1.0)
    write_run(run, [graded])
    with pytest.raises(ConfigError, match="not an earlier hf-dataset export"):
        export_hf_dataset(run, mine)
    assert [p.name for p in mine.iterdir()] == ["README.md"]
    assert (mine / "README.md").read_text() == "my notes\n"

    parts = Trajectory(
        task="t",
        seed=3,
        agent="x",
        reward=1.0,
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    )
    write_run(run, [parts])
    with pytest.raises(ConfigError, match=r"seed 3\).*content is list.*openai-jsonl"):
        export_hf_dataset(run, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()

    # refused at the second episode, after the first was written: nothing stays, and a
    # second try at the same place is not refused as "not an export"
    second = write_run(tmp_path / "run2", [graded, parts])
    with pytest.raises(ConfigError, match=r"seed 3\)"):
        export_hf_dataset(second, tmp_path / "out3")
    assert not (tmp_path / "out3").exists()
    assert export_hf_dataset(write_run(tmp_path / "run3", [graded]), tmp_path / "out3") == 1


def test_exporting_needs_no_datasets_and_the_schema_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` fails
    run = write_run(tmp_path / "run", episodes())
    assert export_hf_dataset(run, tmp_path / "out") == 3
    with pytest.raises(ConfigError, match=r"pip install 'infragym\[hf\]'"):
        hf_features()


def test_cli_exports_next_to_the_run_and_says_how_to_load_it(
    hf: Any, no_network: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trajs = episodes()
    run = write_run(tmp_path / "run", trajs)
    assert main(["export", str(run), "--format", "hf-dataset"]) == 0
    out = capsys.readouterr().out
    default = run / "export.hf"
    assert f"wrote 3 episode(s) to {default}" in out
    assert f"datasets.load_dataset({str(default.resolve())!r}, split='train')" in out
    check_rows(list(load_dir(hf, default, tmp_path)), trajs)

    # RUN_DIR may be the trajectories file itself; --out puts the dataset anywhere
    assert main(["export", str(run / TRAJECTORIES_FILE), "--format", "hf-dataset",
                 "--out", str(tmp_path / "elsewhere")]) == 0  # fmt: skip
    assert "wrote 3 episode(s)" in capsys.readouterr().out
    assert (tmp_path / "elsewhere" / "data" / "train.jsonl").is_file()

    assert main(["export", str(tmp_path / "nothing-here"), "--format", "hf-dataset"]) == 2
    err = capsys.readouterr().err
    assert "no trajectories.jsonl" in err and "infragym run" in err
    assert not (tmp_path / "nothing-here").exists()


def test_the_installed_command_exports(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", episodes())
    exe = Path(sys.executable).with_name("infragym")
    r = subprocess.run(
        [str(exe), "export", str(run), "--format", "hf-dataset"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "wrote 3 episode(s)" in r.stdout and "datasets.load_dataset(" in r.stdout
    assert len((run / "export.hf" / "data" / "train.jsonl").read_text().splitlines()) == 3
    r = subprocess.run(
        [str(exe), "export", str(tmp_path / "none"), "--format", "hf-dataset"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2 and "no trajectories.jsonl" in r.stderr


@needs_root
@pytest.mark.timeout(120)
def test_real_episodes_export_and_load_exactly(
    hf: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scripted episode and a model-backed one (real OpenAI tool calls over HTTP, a
    text-only turn, a reminder, usage) through rollout_many, exported and loaded."""
    task = str(tiny_task(tmp_path, dev_hosts=0, grader=WORKSPACE_GRADER))
    run = tmp_path / "run"
    script = [
        Reply("Writing the answer and checking it.",
              (Call("write_file", {"path": "answer.txt", "content": "42\n"}),
               Call("bash", {"command": "cat answer.txt"}))),
        Reply.text("It says 42."),
        Reply.tool("submit", {}),
    ]  # fmt: skip

    async def episodes_() -> None:
        await rollout_many(task, lambda: ScriptedAgent([
            ToolCall("write_file", {"path": "answer.txt", "content": "42\n"})]), [1], 1,
            artifacts_dir=run / "scripted")  # fmt: skip
        async with ScriptedModelServer(script, models=("m",), api_key="k") as server:
            await rollout_many(
                task,
                lambda: OpenAIAgent(model="m", base_url=server.url, api_key="k"),
                [2],
                1,
                artifacts_dir=run / "model",
            )

    asyncio.run(episodes_())
    trajs = list(read_trajectories(run))
    assert sorted((t.agent, t.reward) for t in trajs) == [("openai:m", 1.0), ("scripted", 1.0)]
    model_t = next(t for t in trajs if t.model == "m")
    assert [m["role"] for m in model_t.messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "user",
        "assistant",
        "tool",
    ]
    assert "tool_calls" not in model_t.messages[5]  # the text-only turn

    out = run / "export.hf"
    assert export_hf_dataset(run, out) == 2
    block_network(monkeypatch)  # the model server is done: datasets gets no network
    rows = list(load_dir(hf, out, tmp_path))
    check_rows(rows, trajs)
    row = next(r for r in rows if r["model"] == "m")
    calls = row["messages"][2]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["write_file", "bash"]
    assert json.loads(calls[0]["function"]["arguments"]) == {
        "path": "answer.txt",
        "content": "42\n",
    }
    assert row["messages"][3]["tool_call_id"] == calls[0]["id"]
    assert row["messages"][5] == {
        "role": "assistant",
        "content": "It says 42.",
        "tool_calls": None,
        "tool_call_id": None,
    }
    assert row["prompt_tokens"] == sum(u["prompt_tokens"] for u in model_t.usage) > 0
    assert row["completion_tokens"] == sum(u["completion_tokens"] for u in model_t.usage)
