"""The RL environment API: one task's episodes, driven by tool calls.

::

    env = infragym.make("kv-replicated")            # an Env (async); SyncEnv(env) blocks
    obs = await env.reset(seed=1)                   # instructions, tool schemas
    while True:
        result = await env.step(ToolCall("bash", {"command": "ls"}))
        if result.terminated or result.truncated:   # submit, step or wall-time limit
            break                                   # result.reward, result.info["grade"]
    await env.close()

Tools: ``bash``, ``read_file``, ``write_file``, ``host_bash`` (tasks with dev hosts) and
``submit``. A bad call is an error observation and the episode carries on; a failure of the
platform raises :class:`EpisodeError` and the episode has no reward.
"""

from ._env import Env, make
from ._sync import SyncEnv
from ._types import (
    EndReason,
    EnvOptions,
    EpisodeError,
    ResetObservation,
    StepInfo,
    StepResult,
    ToolCall,
    ToolError,
    ToolObservation,
    ToolSpec,
)

__all__ = [
    "EndReason",
    "Env",
    "EnvOptions",
    "EpisodeError",
    "ResetObservation",
    "StepInfo",
    "StepResult",
    "SyncEnv",
    "ToolCall",
    "ToolError",
    "ToolObservation",
    "ToolSpec",
    "make",
]
