"""Gymnasium adapter: a task as a ``gymnasium.Env[str, str]`` with text spaces.

::

    env = infragym.gym.make("kv-replicated")    # or gymnasium.make("infragym/kv-replicated-v1")
    obs, info = env.reset(seed=1)               # instructions, how to act, the tools' schemas
    obs, reward, terminated, truncated, info = env.step(
        '{"name": "bash", "arguments": {"command": "ls"}}'
    )                                           # the tool's output; reward 0 until the end
    env.close()

An action is the JSON text of one tool call, ``{"name": ..., "arguments": {...}}`` or an
OpenAI tool call; anything else is an ``error: ...`` observation and the episode carries
on. Importing this module registers the built-in tasks with Gymnasium. It needs the
``gym`` extra: ``pip install 'infragym[gym]'``.
"""

from .._errors import ConfigError as _ConfigError

try:
    import gymnasium as _gymnasium
except ImportError as _exc:
    raise _ConfigError(
        f"infragym.gym needs gymnasium, which is not installed ({_exc}): "
        "pip install 'infragym[gym]'"
    ) from None

from ._env import InfraGymEnv, env_id, make, parse_action
from ._env import register_builtin_tasks as _register_builtin_tasks
from ._spaces import CHARSET

del _gymnasium

_register_builtin_tasks()

__all__ = ["CHARSET", "InfraGymEnv", "env_id", "make", "parse_action"]
