"""`infragym play TASK`: a task author's session in the agent's sandbox.

On a terminal it is a real shell: ``bash -i`` on a pseudo-terminal of the workstation the
env's ``bash`` tool uses (same view, user, cgroups, network and seccomp filter), with job
control and history, and Ctrl-C interrupting the command in the foreground, not the
session. Shell functions reach what the shell cannot: ``:host``/``:bg`` run a command on a
dev host (the ``host_bash`` tool, with the task's contract environment), ``:submit`` ends
the shell and grades the workspace. They ask this process over a unix socket in the
sandbox's ``/tmp``, which only the sandbox (and root) can reach.

With stdin not a terminal (a pipe, a script) each line is one tool call, as before.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import socket
import sys
import termios
import tty
from types import FrameType
from typing import Any

from .._errors import ConfigError
from ..env import SyncEnv, ToolCall
from ._common import console, err_console, print_result, runs_home

__all__ = ["cmd_play"]

PLAY_HELP = """every line runs as the agent's `bash` tool, in the agent's sandbox; also:
  :host HOST COMMAND   run COMMAND on a dev host (host_bash)
  :bg HOST COMMAND     start COMMAND in the background on a dev host
  :read PATH           read_file PATH
  :submit              end the episode and grade the workspace
  :quit                end the episode without grading"""

SHELL_HELP = """This is bash in the agent's sandbox (cwd /workspace), on a terminal. Also:
  :host HOST 'COMMAND'  run COMMAND on a dev host (host_bash: /srv/app is the workspace,
                        and the task's contract environment is set); quote it, or $VARS
                        expand here, not there. It runs to its end or its timeout.
  :bg HOST 'COMMAND'    start COMMAND in the background on a dev host
  :submit               end the shell and grade the workspace
  exit, :quit, Ctrl-D   end the session without grading
  :help                 this text"""

PLAY_DIR = ".infragym-play"  # in the sandbox's /tmp
MAX_REQUEST = 1 << 20

# the shell functions; the client is the sandbox's own python3, run isolated (-I -S)
RC = f"""[ -r /etc/bash.bashrc ] && . /etc/bash.bashrc
PS1='agent:\\w\\$ '
_infragym_play() {{ /usr/bin/python3 -I -S /tmp/{PLAY_DIR}/client.py "$@"; }}
:host() {{ _infragym_play host "$@"; }}
:bg() {{ _infragym_play bg "$@"; }}
:submit() {{ _infragym_play submit; }}
:quit() {{ exit; }}
:help() {{ cat /tmp/{PLAY_DIR}/help; }}
:help
"""

CLIENT = f"""import json, socket, sys
if len(sys.argv) < 2 or sys.argv[1] in ("host", "bg") and len(sys.argv) < 4:
    sys.exit(f"usage: :{{sys.argv[1] if len(sys.argv) > 1 else 'host'}} HOST 'COMMAND'")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect("/tmp/{PLAY_DIR}/sock")
s.sendall(json.dumps(sys.argv[1:]).encode())
s.shutdown(socket.SHUT_WR)
data = b"".join(iter(lambda: s.recv(65536), b""))
reply = json.loads(data or b'{{"output": "(no reply: the session is ending)", "code": 1}}')
print(reply["output"])
sys.exit(reply["code"])
"""


def _host_call(word: str, host: str, command: str) -> ToolCall:
    return ToolCall("host_bash", {"host": host, "command": command, "background": word == ":bg"})


def _play_action(line: str) -> ToolCall | None:
    word = line.split(None, 1)[0] if line.strip() else ""
    if word in (":host", ":bg"):
        parts = line.split(None, 2)
        if len(parts) < 3:
            raise ConfigError(f"usage: {word} HOST COMMAND")
        return _host_call(word, parts[1], parts[2])
    if word == ":read":
        return ToolCall("read_file", {"path": line[len(":read") :].strip()})
    if line.strip() == ":submit":
        return ToolCall("submit", {})
    if line.strip() in (":quit", ":q"):
        return None
    return ToolCall("bash", {"command": line})


def cmd_play(args: argparse.Namespace) -> int:
    """An interactive session in the agent's sandbox, for task authors."""
    from ..env import make
    from ..tasks import find_task

    out = args.out or runs_home() / find_task(args.task).name / "play"
    env = SyncEnv(make(args.task, artifacts_dir=out))
    try:
        obs = env.reset(seed=args.seed)
        console.print(
            f"[bold]{obs.task}[/] seed {obs.seed}"
            + "".join(f" {k}={v}" for k, v in obs.variant.items())
            + "; dev hosts: "
            f"{', '.join(obs.dev_hosts) or 'none'}; tools: "
            f"{', '.join(t.name for t in obs.tools)}"
        )
        if sys.stdin.isatty() and sys.stdout.isatty():
            return _shell(env)
        console.print(PLAY_HELP, highlight=False)
        return _lines(env)
    finally:
        env.close()


def _lines(env: SyncEnv) -> int:
    """One tool call per line of stdin."""
    while True:
        try:
            line = input("agent$ ") if sys.stdin.isatty() else sys.stdin.readline()
        except EOFError:
            line = ""
        if not line:
            console.print("end of input: quitting without grading")
            return 0
        line = line.rstrip("\n")
        if not line.strip():
            continue
        try:
            action = _play_action(line)
        except ConfigError as exc:
            err_console.print(str(exc))
            continue
        if action is None:
            return 0
        result = env.step(action)
        print(result.observation.content, flush=True)
        if result.terminated or result.truncated:
            _print_grade(result.info)
            return 0


def _print_grade(info: Any) -> None:
    grade = info.get("grade")
    if grade is not None:
        print_result(grade, "play")


class _Session:
    """The terminal relay and the helper functions' server, for one shell."""

    def __init__(self, env: SyncEnv) -> None:
        ws = env.env.workstation
        assert ws is not None
        self.env = env
        self.dir = ws.tmp / PLAY_DIR
        self.dir.mkdir(mode=0o755)
        (self.dir / "rc").write_text(RC)
        (self.dir / "client.py").write_text(CLIENT)
        (self.dir / "help").write_text(SHELL_HELP + "\n")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.listener.bind(str(self.dir / "sock"))
            os.chmod(self.dir / "sock", 0o666)  # the agent's user connects
            self.listener.listen(4)
            term = os.environ.get("TERM") or "xterm"
            self.pty = ws.spawn_interactive(
                ["/bin/bash", "--rcfile", f"/tmp/{PLAY_DIR}/rc", "-i"], env={"TERM": term}
            )
        except BaseException:
            self.listener.close()
            raise
        self.submit = False
        self.ended: dict[str, Any] | None = None  # the info of a step that ended the episode

    def resize(self) -> None:
        with contextlib.suppress(OSError):
            size = os.get_terminal_size(sys.stdout.fileno())
            self.pty.resize(size.lines, size.columns)

    def relay(self) -> None:
        """Until the shell ends (or a helper ends the episode)."""
        master, stdin, listener = self.pty.master_fd, sys.stdin.fileno(), self.listener.fileno()
        fds = [master, stdin, listener]
        while True:
            ready, _, _ = select.select(fds, [], [])
            if master in ready:
                try:
                    data = os.read(master, 1 << 16)
                except OSError:  # EIO: the shell and all it started are gone
                    data = b""
                if not data:
                    return
                _write_all(sys.stdout.fileno(), data)
            if stdin in ready:
                data = os.read(stdin, 1 << 16)
                if data:
                    _write_all(master, data)
                else:
                    fds.remove(stdin)
            if listener in ready:
                self._serve()
                if self.submit or self.ended is not None:
                    return

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(5.0)
            try:
                data = b""
                while len(data) <= MAX_REQUEST and (chunk := conn.recv(1 << 16)):
                    data += chunk
                request = json.loads(data)
                word, *rest = request
                reply = self._request(str(word), [str(x) for x in rest])
            except (OSError, ValueError, TypeError) as exc:
                reply = {"output": f"play: bad request ({exc})", "code": 2}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(reply).encode())

    def _request(self, word: str, rest: list[str]) -> dict[str, Any]:
        if word == "submit":
            self.submit = True
            return {"output": "submitting: the shell ends and the workspace is graded", "code": 0}
        if word not in ("host", "bg") or len(rest) < 2:
            return {"output": "usage: :host HOST 'COMMAND' or :bg HOST 'COMMAND'", "code": 2}
        result = self.env.step(_host_call(f":{word}", rest[0], " ".join(rest[1:])))
        obs = result.observation
        if result.terminated or result.truncated:
            self.ended = dict(result.info)
        code = result.info.get("exit_code")
        return {
            "output": obs.content,
            "code": 1 if obs.is_error else (code if isinstance(code, int) else 0),
        }

    def close(self) -> None:
        try:
            self.pty.close()
        finally:
            self.listener.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _shell(env: SyncEnv) -> int:
    session = _Session(env)
    stdin = sys.stdin.fileno()
    saved = termios.tcgetattr(stdin)

    def on_winch(signum: int, frame: FrameType | None) -> None:
        session.resize()

    old_winch = signal.signal(signal.SIGWINCH, on_winch)
    try:
        session.resize()
        tty.setraw(stdin)
        try:
            session.relay()
        finally:
            with contextlib.suppress(termios.error):  # the terminal may be gone (SIGHUP)
                termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
    finally:
        signal.signal(signal.SIGWINCH, old_winch)
        session.close()
    print()
    if session.ended is not None:
        console.print(f"the episode ended ({session.ended.get('end_reason')})")
        _print_grade(session.ended)
    elif session.submit:
        console.print("submitted: grading the workspace...")
        result = env.step(ToolCall("submit", {}))
        _print_grade(result.info)
    else:
        console.print("the shell ended: quitting without grading")
    return 0
