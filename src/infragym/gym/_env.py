"""A task as a ``gymnasium.Env[str, str]``: text in, text out, graded at the end.

The episode underneath is the infragym :class:`~infragym.env.Env`, run by a
:class:`~infragym.env.SyncEnv` (its own event loop), so every rule of the env holds here:
the reward is 0 until the final step (submit, the step limit or the wall-time limit)
carries the grade, and a failure of the platform raises
:class:`~infragym.env.EpisodeError`, never a reward.
"""

from __future__ import annotations

import json
import weakref
from typing import Any

import gymnasium
from gymnasium.envs.registration import EnvSpec

from .._errors import ConfigError
from ..env import Env, EpisodeError, ResetObservation, SyncEnv, ToolCall
from ..env import make as make_env
from ..tasks import BUILTIN_DIR, Task, load_task
from ._spaces import fit, text_space, to_charset

__all__ = ["InfraGymEnv", "env_id", "make", "register_builtin_tasks"]

ENTRY_POINT = "infragym.gym:InfraGymEnv"
EXAMPLE = '{"name": "bash", "arguments": {"command": "ls"}}'

# What a step's info keeps of the env's StepInfo: everything the same seed and actions
# reproduce. ``elapsed_s`` (wall-clock time) is left out on purpose, see InfraGymEnv.
STEP_INFO_KEYS = ("step", "tool", "is_error", "exit_code", "timed_out", "output_bytes",
                  "end_reason", "phase_index", "phase", "episode")  # fmt: skip

# Not a tool of any task: an action that is no tool call is stepped as a call of it, so it
# counts against the step and wall-time limits like any other mistake of the model.
_NO_TOOL = "(not a tool call)"


def env_id(task: Task) -> str:
    """The Gymnasium id of ``task``: ``infragym/<name>-v<version>``."""
    return f"infragym/{task.name}-v{task.spec.version}"


def parse_action(action: str) -> ToolCall | str:
    """The tool call an action's JSON text names, or what is wrong with it.

    ``{"name": TOOL, "arguments": {...}}`` or an OpenAI tool call
    (``{"id", "type": "function", "function": {"name", "arguments"}}``, arguments as an
    object or its JSON text). Bad arguments and unknown tools are the env's to report.
    """
    if not isinstance(action, str):
        raise TypeError(
            f"an action is the JSON text of a tool call (a str), not {type(action).__name__}: "
            "use json.dumps"
        )
    try:
        value = json.loads(action)
    except (ValueError, RecursionError) as exc:
        return f"the action is not JSON ({exc})"
    if isinstance(value, list):
        return "the action is a JSON array: write one tool call per step, as a JSON object"
    if not isinstance(value, dict):
        return f"the action is a JSON {type(value).__name__}, not an object"
    fn = value.get("function")
    if not isinstance((fn if isinstance(fn, dict) else value).get("name"), str):
        return 'the action names no tool: it needs "name", a string'
    return ToolCall.parse(value)


def reset_text(obs: ResetObservation) -> str:
    """What a text policy reads first: the instructions, how to act, the tools' schemas."""
    limits = obs.limits
    tools = "\n".join(
        json.dumps(
            {"name": t.name, "description": t.description, "parameters": t.parameters},
            ensure_ascii=False,
        )
        for t in obs.tools
    )
    return (
        f"{obs.instructions.rstrip()}\n\n"
        "## How to act\n\n"
        'Each action is one tool call written as JSON: {"name": TOOL, "arguments": '
        f"{{...}}}}, for example {EXAMPLE}. The observation that follows is the tool's "
        "output. The episode ends when you call submit, after "
        f"{limits.max_steps} actions or after {limits.agent_wall_s:g} s, whichever comes "
        "first; then everything you started is stopped and your workspace is graded as it "
        f"stands. A command times out after {limits.command_timeout_s:g} s.\n\n"
        "## Tools (JSON Schema of each tool's arguments)\n\n"
        f"{tools}\n"
    )


class InfraGymEnv(gymnasium.Env[str, str]):
    """One infragym task as a Gymnasium environment with text spaces.

    - ``reset(seed=...)`` starts an episode (ending any running one, ungraded). A seed is
      the infragym seed (it fixes the grading's fault schedule); without one, the seed is
      drawn from ``np_random``, so every episode after a seeded reset is reproducible.
      The observation is the task's instructions, how to act and each tool's JSON Schema;
      ``info`` holds ``task``, ``seed``, ``variant`` (the task's variant the seed drew),
      ``tools`` (OpenAI format), ``dev_hosts`` and ``limits``.
    - ``step(action)``: the action is the JSON text of one tool call (see
      :func:`parse_action`). The observation is the tool's output; an action that is not a
      tool call, an unknown tool or bad arguments is an ``error: ...`` observation, reward
      0, and the episode carries on (it counts as a step). The final step carries the
      reward and ``info["grade"]`` (the ``GradeResult`` as a plain dict). ``info`` also
      holds ``step``, ``tool``, ``is_error``, ``exit_code``, ``timed_out``,
      ``output_bytes`` and, at the end, ``end_reason``; not the wall-clock ``elapsed_s``
      of the env's step info, so that info is the same for the same seed and actions.
    - Observations are in ``observation_space`` by construction (see
      :mod:`infragym.gym._spaces`). ``step`` takes any string, in the action space or not.
    - ``close()`` ends the episode and removes everything it made; it is idempotent, and
      ``reset`` after it starts afresh. Do not use the env inside a running event loop
      (use :class:`infragym.env.Env` there).
    """

    metadata: dict[str, Any] = {  # noqa: RUF012 (declared so by gymnasium.Env)
        "render_modes": ["ansi"],
        # gymnasium's checker asks every env that renders for a frame rate; a text episode
        # has none, and nothing here uses it
        "render_fps": 4,
    }

    def __init__(self, task: str, *, render_mode: str | None = None, **options: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"render_mode must be None or 'ansi', not {render_mode!r}")
        self.render_mode = render_mode
        self.infragym_env: Env = make_env(task, **options)
        o = self.infragym_env.options
        # each byte of output may show as \xNN: room for the longest read or command output
        # with every byte escaped, plus instructions, markers and notes
        self._max_obs = 4 * max(o.max_read_bytes, o.max_output_bytes) + 65536
        self.observation_space = text_space(0, self._max_obs)
        # room for a write_file of max_write_bytes with every character escaped in two
        self.action_space = text_space(1, 2 * o.max_write_bytes + 65536)
        kwargs: dict[str, Any] = {"task": task, **options}
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        self.spec = EnvSpec(env_id(self.infragym_env.task), ENTRY_POINT, kwargs=kwargs)
        self._sync: SyncEnv | None = None
        self._finalizer: weakref.finalize[[SyncEnv], InfraGymEnv] | None = None
        self._last = ""

    def __repr__(self) -> str:
        return f"InfraGymEnv({self.infragym_env.task.name!r})"

    def _text(self, text: str) -> str:
        return fit(to_charset(text), self._max_obs)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        if options:
            raise ConfigError(f"reset takes no options, not {', '.join(map(str, options))}")
        if seed is None:
            seed = int(self.np_random.integers(2**31))
        if self._sync is None:
            self._sync = SyncEnv(self.infragym_env)
            # an env dropped without close() still removes its episode when collected
            self._finalizer = weakref.finalize(self, _close_quietly, self._sync)
        obs = self._sync.reset(seed=seed)
        self._last = self._text(reset_text(obs))
        info = {
            "task": obs.task,
            "seed": obs.seed,
            "variant": dict(obs.variant),
            # a fresh copy each time: users keep what an env returns
            "tools": json.loads(json.dumps(obs.openai_tools())),
            "dev_hosts": list(obs.dev_hosts),
            "limits": {
                "max_steps": obs.limits.max_steps,
                "agent_wall_s": obs.limits.agent_wall_s,
                "command_timeout_s": obs.limits.command_timeout_s,
            },
        }
        return self._last, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        call = parse_action(action)
        if self._sync is None:
            raise EpisodeError("no episode is running: call reset() first")
        result = self._sync.step(call if isinstance(call, ToolCall) else ToolCall(_NO_TOOL))
        content = result.observation.content
        raw: dict[str, Any] = dict(result.info)
        info = {k: raw[k] for k in STEP_INFO_KEYS if k in raw}
        if not isinstance(call, ToolCall):
            info["tool"] = None
            if "is_error" in result.info:  # the call was tried (not cut off by wall time)
                content = f"error: {call}. An action is one tool call as JSON, e.g. {EXAMPLE}"
        grade = result.info.get("grade")
        if grade is not None:  # the GradeResult as plain JSON types
            info["grade"] = grade.model_dump(mode="json")
        self._last = self._text(content)
        return self._last, float(result.reward), result.terminated, result.truncated, info

    def render(self) -> str | None:
        """``ansi``: the last observation (reset's or a step's) as text."""
        return self._last if self.render_mode == "ansi" else None

    def close(self) -> None:
        """End any running episode, ungraded, and remove everything it made. Idempotent."""
        sync, self._sync = self._sync, None
        finalizer, self._finalizer = self._finalizer, None
        if finalizer is not None:
            finalizer.detach()
        if sync is not None:
            sync.close()


def _close_quietly(sync: SyncEnv) -> None:
    try:
        sync.close()
    except RuntimeError:  # collected inside a running event loop: the exit sweep removes it
        pass


def make(name: str, **options: Any) -> InfraGymEnv:
    """The Gymnasium environment of task ``name`` (a built-in or registered task, or a task
    folder's path); ``options`` are :class:`~infragym.env.EnvOptions` fields and
    ``render_mode`` (None or ``"ansi"``)."""
    return InfraGymEnv(name, **options)


def register_builtin_tasks() -> None:
    """Register each built-in task with Gymnasium as ``infragym/<name>-v<version>``, so
    ``gymnasium.make`` and ``gymnasium.make_vec`` know it."""
    for d in sorted(BUILTIN_DIR.iterdir()) if BUILTIN_DIR.exists() else []:
        if not (d / "task.toml").exists():
            continue
        task = load_task(d)
        if env_id(task) not in gymnasium.registry:
            gymnasium.register(env_id(task), ENTRY_POINT, kwargs={"task": task.name})
