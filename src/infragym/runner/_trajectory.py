"""One JSONL record per episode: what the agent saw and did, and what it earned.

The schema is versioned (``schema_version``) and documented field by field, because
trainers read these files long after the code that wrote them has changed. ``messages``
are in OpenAI chat format (system, user, assistant with ``tool_calls``, ``tool`` results),
so they feed chat-template tokenisers as they are.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .. import __version__
from .._errors import ConfigError
from ..agent import SYSTEM_PROMPT, Agent, OpenAIAgent, ScriptedAgent
from ..env import ResetObservation, StepResult
from ..grading import GradeResult

TRAJECTORY_SCHEMA_VERSION = 1
TRAJECTORIES_FILE = "trajectories.jsonl"


class Trajectory(BaseModel):
    """An episode as a trainer reads it.

    - ``messages``: the conversation in OpenAI chat format, tool calls and results included;
      it opens with the system prompt and the instructions whoever played (a scripted or
      reference agent is recorded with ``infragym.agent.SYSTEM_PROMPT``, as a model is).
    - ``tools``: the tool schemas offered (OpenAI function format).
    - ``usage``: per model request, token counts as the server reported them and timings;
      ``kind`` is ``turn``, or ``summary`` for a compaction's request.
    - ``compactions``: each time a model agent asked for a summary to continue past its
      context budget (``infragym.agent.Compaction``: turn, where in ``messages``, ok or
      why not, sizes before and after). A successful one also put its request and the
      summary in ``messages`` (both with ``name`` ``infragym_compaction``).
    - ``steps``: per tool call, the tool, whether it was an error, its wall time.
    - ``reward`` is None exactly when ``error`` is set (a platform failure, no reward).
    - ``breakdown``, ``functional``, ``timeline``: from the grading result.
    - ``variant``: the task's variant the seed drew (what the instructions said).
    """

    schema_version: int = TRAJECTORY_SCHEMA_VERSION
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    task: str
    seed: int
    variant: dict[str, Any] = Field(default_factory=dict)
    agent: str
    model: str | None = None
    platform_version: str = __version__
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = Field(default_factory=list)
    usage: list[dict[str, Any]] = Field(default_factory=list)
    compactions: list[dict[str, Any]] = Field(default_factory=list)
    steps: list[dict[str, Any]] = Field(default_factory=list)
    reward: float | None
    functional: float | None = None
    breakdown: dict[str, float] = Field(default_factory=dict)
    timeline: list[dict[str, Any]] = Field(default_factory=list)
    end_reason: str | None = None
    error: str | None = None
    wall_s: float = 0.0


def _prompt(obs: ResetObservation) -> list[dict[str, Any]]:
    """What a model is shown first, recorded for every agent alike: a trainer's data has one
    shape whoever played (a model agent records its own, by default the same prompt)."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": obs.instructions},
    ]


def _scripted_messages(
    obs: ResetObservation, transcript: Sequence[StepResult], calls: Sequence[Any]
) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = _prompt(obs)
    for i, (call, result) in enumerate(zip(calls, transcript, strict=False)):
        call_id = result.observation.call_id or f"call_{i}"
        args = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        msgs.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": args},
                    }
                ],
            }
        )
        msgs.append(
            {"role": "tool", "tool_call_id": call_id, "content": result.observation.content}
        )
    return msgs


def build_trajectory(
    task: str,
    seed: int,
    agent: Agent,
    obs: ResetObservation | None,
    final: StepResult | None,
    grade: GradeResult | None,
    wall_s: float,
    error: str | None = None,
) -> Trajectory:
    """The record of one episode from the agent's own account of it."""
    messages: list[dict[str, Any]] = []
    usage: list[dict[str, Any]] = []
    compactions: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    model: str | None = None
    end_reason: str | None = final.info.get("end_reason") if final is not None else None
    if isinstance(agent, OpenAIAgent):
        messages = [dict(m) for m in agent.messages]
        usage = [dataclasses.asdict(u) for u in agent.usage]
        compactions = [dataclasses.asdict(c) for c in agent.compactions]
        model = agent.model
        end_reason = agent.end_reason or end_reason
    elif isinstance(agent, ScriptedAgent) and obs is not None:
        from ..env import ToolCall

        calls = [*agent.actions, ToolCall("submit", {})]
        messages = _scripted_messages(obs, agent.transcript, calls)
        steps = [
            {
                "tool": r.info.get("tool"),
                "is_error": r.observation.is_error,
                "elapsed_s": r.info.get("elapsed_s"),
            }
            for r in agent.transcript
        ]
    elif obs is not None:
        messages = _prompt(obs)
    reward = None if error else (grade.reward if grade is not None else None)
    variant = dict(obs.variant) if obs is not None else dict(grade.variant) if grade else {}
    return Trajectory(
        task=task,
        seed=seed,
        variant=variant,
        agent=agent.name,
        model=model,
        messages=messages,
        tools=obs.openai_tools() if obs is not None else [],
        usage=usage,
        compactions=compactions,
        steps=steps,
        reward=reward,
        functional=grade.functional if grade is not None else None,
        breakdown=dict(grade.breakdown) if grade is not None else {},
        timeline=list(grade.timeline) if grade is not None else [],
        end_reason=end_reason,
        error=error or (grade.error if grade is not None else None),
        wall_s=wall_s,
    )


def read_trajectories(run_dir: str | Path) -> Iterator[Trajectory]:
    """Every trajectory under ``run_dir`` (its own file and those of sub-directories)."""
    root = Path(run_dir)
    files = [root] if root.is_file() else sorted(root.rglob(TRAJECTORIES_FILE))
    if not files:
        raise ConfigError(
            f"no {TRAJECTORIES_FILE} under {root}: run episodes with "
            "`infragym run ... --out DIR` first"
        )
    for f in files:
        with f.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    t = Trajectory.model_validate_json(line)
                except ValueError as exc:
                    raise ConfigError(f"{f}:{lineno}: not a trajectory record ({exc})") from None
                if t.schema_version != TRAJECTORY_SCHEMA_VERSION:
                    raise ConfigError(
                        f"{f}:{lineno}: trajectory schema {t.schema_version} is "
                        f"not supported (this infragym reads "
                        f"{TRAJECTORY_SCHEMA_VERSION})"
                    )
                yield t


def export_openai_jsonl(run_dir: str | Path, out: str | Path) -> int:
    """Write one ``{"messages", "tools", "reward", ...}`` line per graded episode."""
    n = 0
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for t in read_trajectories(run_dir):
            if t.reward is None:
                continue  # a platform failure has no reward to train on
            fh.write(
                json.dumps(
                    {
                        "messages": t.messages,
                        "tools": t.tools,
                        "reward": t.reward,
                        "task": t.task,
                        "seed": t.seed,
                        "agent": t.agent,
                        "id": t.id,
                    }
                )
                + "\n"
            )
            n += 1
    return n
