"""``infragym serve``: the installed tasks over OpenEnv's WebSocket protocol."""

from __future__ import annotations

import argparse

from .._errors import ConfigError
from ..tasks import find_task, list_tasks
from ._common import err_console


def add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ._parser import positive_int

    sv = sub.add_parser(
        "serve",
        help="serve tasks over OpenEnv (WebSocket /ws) for trainers elsewhere",
        description="An OpenEnv-compatible server: one episode per WebSocket session at /ws "
        "(reset with task, seed and options; step with one tool call; state; close), and "
        "/health, /schema, /metadata. Needs the openenv extra of infragym.",
    )
    sv.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1); the server has no authentication: "
        "listen only where every client is trusted",
    )
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sv.add_argument(
        "--max-sessions",
        type=positive_int,
        default=4,
        help="sessions (and episodes) at once; more get a capacity error (default 4)",
    )
    sv.add_argument(
        "--tasks",
        nargs="+",
        default=None,
        metavar="TASK",
        help="task names or task folders to serve (default: every installed task)",
    )
    sv.add_argument(
        "--session-timeout",
        type=float,
        default=300.0,
        help="seconds without a message after which a session and its episode end (default 300)",
    )
    sv.set_defaults(fn=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from ..serve import serve
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"infragym serve needs the openenv package ({exc}): install infragym's openenv "
            "extra, or pip install 'openenv>=0.10,<0.11'"
        ) from None
    if not args.session_timeout > 0:
        raise ConfigError(f"--session-timeout must be positive, not {args.session_timeout}")
    tasks = [find_task(t) for t in args.tasks] if args.tasks else list_tasks()
    names = ", ".join(t.name for t in tasks)
    err_console.print(
        f"serving {names} on ws://{args.host}:{args.port}/ws "
        f"(at most {args.max_sessions} sessions; idle timeout {args.session_timeout:g} s)",
        highlight=False,
    )
    serve(
        tasks,
        host=args.host,
        port=args.port,
        max_sessions=args.max_sessions,
        session_timeout=args.session_timeout,
    )
    return 0
