"""Serve infragym's tasks over OpenEnv, the protocol trainers speak (``infragym serve``).

One WebSocket session at ``/ws`` per episode stream: ``reset`` takes ``task``, ``seed``
and ``options`` (Env options a client may set); ``step`` takes one tool call
``{"name", "arguments", "id"}`` and returns the observation, the reward (0 until the final
step), ``done`` and metadata (the grade and its breakdown at the end); ``state`` gives the
episode's id, step count and limits. ``/health``, ``/schema`` and ``/metadata`` are
OpenEnv's. A session whose client vanishes or stays silent for the session timeout is
closed and its episode removed; at most ``max_sessions`` sessions and episodes exist; a
platform failure (:class:`~infragym.env.EpisodeError`) is an error message, never a
reward. The episode's agent tools are also MCP tools of each session (OpenEnv's
``POST /mcp``: ``tools/list``, ``tools/call``), each call one step of the session's
episode; never reset, step, state or close. Needs the ``openenv`` extra:
``pip install 'infragym[openenv]'``.

This layer sits beside the runner, above env: nothing below imports it.
"""

from ..remote import REMOTE_OPTIONS
from ._app import Guard, create_app, serve
from ._environment import InfraGymEnvironment
from ._models import InfraGymObservation, InfraGymResetObservation, InfraGymState, ToolCallAction

__all__ = [
    "REMOTE_OPTIONS",
    "Guard",
    "InfraGymEnvironment",
    "InfraGymObservation",
    "InfraGymResetObservation",
    "InfraGymState",
    "ToolCallAction",
    "create_app",
    "serve",
]
