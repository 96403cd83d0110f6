"""Play episodes on a remote ``infragym serve``: :class:`RemoteEnv` is an Env whose episode
runs on the server (its sandbox, dev hosts and grading), reached over OpenEnv's WebSocket
session, so the runner and the agents play it as they play a local one
(``rollout_many(..., server=URL)``, ``infragym run --server URL``).

Needs no ``openenv`` package on the client: the session protocol is JSON messages
(``reset``, ``step``, ``state``, ``close``) over a WebSocket at ``/ws``, spoken here with
aiohttp. A server's refusal or a platform failure arrives as an error message and is raised
as the error the local Env would raise (:class:`~infragym.env.EpisodeError` for a failed
episode, :class:`~infragym.ResourceError` for a server at capacity), never as a reward.

Beside the runner: it needs env's types and grading's result, and nothing above imports
it but the runner and the command line.
"""

from ._client import REMOTE_OPTIONS, RemoteEnv, RemoteTask, servers_from

__all__ = ["REMOTE_OPTIONS", "RemoteEnv", "RemoteTask", "servers_from"]
