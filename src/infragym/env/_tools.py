"""The agent's tools: their JSON schemas, argument checks, and what each one does.

A mistake of the model (an unknown tool, a missing or mistyped argument, a path outside
the workspace) is a :class:`ToolError`, shown to it; anything else that goes wrong is the
platform's and propagates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..sandbox import WORKSPACE, AgentSandbox, Cluster, ExecResult
from ..tasks import Limits as TaskLimits
from ._devhosts import host_command, host_start
from ._output import render_cut, render_prefix, safe_text
from ._types import EnvOptions, ToolCall, ToolError, ToolObservation, ToolSpec

__all__ = ["Outcome", "Toolbox", "render_exec", "tool_specs", "validate_arguments"]

COMMAND_DOC = "The command (at most 128 KiB; run longer scripts from a file)."


def _obj(props: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(required),
        "additionalProperties": False,
    }


def tool_specs(
    dev_hosts: Sequence[str],
    limits: TaskLimits,
    options: EnvOptions,
    contract_vars: Sequence[str] = (),
) -> tuple[ToolSpec, ...]:
    """The tools of an episode; ``host_bash`` only when the task has dev hosts.
    ``contract_vars`` name the task's contract environment, set on every dev host."""
    t = f"{limits.command_timeout_s:g}"
    net = (
        f"The network reaches the dev hosts ({', '.join(dev_hosts)}) and nothing else."
        if dev_hosts
        else "There is no network beyond localhost."
    )
    timeout = {
        "type": "number",
        "exclusiveMinimum": 0,
        "description": f"Seconds before the command and everything it started are killed "
        f"(default and maximum {t}).",
    }
    specs = [
        ToolSpec(
            "bash",
            f"Run a bash command on your workstation, in {WORKSPACE} (your workspace: it is "
            "kept between commands and is what gets graded). stdout and stderr come back "
            f"interleaved with the exit code; past {options.max_output_bytes:,} bytes only the "
            "start and the end are kept. Each command runs in its own process namespace: "
            "what it leaves running in the background ends when it returns"
            + (" (run servers on a dev host with host_bash and background=true)" if dev_hosts
               else "")
            + f". Only {WORKSPACE} and /tmp are writable. {net}",
            _obj({"command": {"type": "string", "description": COMMAND_DOC},
                  "timeout": timeout}, ["command"]),
        ),
        ToolSpec(
            "read_file",
            f"Read a file of your workspace (a path in {WORKSPACE}, absolute or relative to "
            f"it). Past {options.max_read_bytes:,} bytes only the start is shown; binary bytes "
            "are shown as \\xNN.",
            _obj({"path": {"type": "string", "description": "The file to read."}}, ["path"]),
        ),
        ToolSpec(
            "write_file",
            f"Create or replace a file of your workspace (a path in {WORKSPACE}, absolute or "
            "relative to it) with the given text; missing directories are created.",
            _obj({"path": {"type": "string", "description": "The file to write."},
                  "content": {"type": "string", "description": "Its full new content."}},
                 ["path", "content"]),
        ),
    ]  # fmt: skip
    if dev_hosts:
        specs.append(
            ToolSpec(
                "host_bash",
                "Run a bash command on a dev host, where you start and try your system. Your "
                "workspace is visible there, read-only and live, at /srv/app (the cwd); each "
                "host has its own /srv/data, /srv/logs, /srv/etc and /tmp, and reaches the "
                "others by name. With background=true the command keeps running (until you "
                "submit) and this returns at once; its output goes to /srv/logs/<name>.log "
                "on that host. Without it, what the command leaves in the background ends "
                "when it returns."
                + (f" Each host's environment holds the deployment contract's variables "
                   f"({', '.join(contract_vars)}), as in production." if contract_vars else ""),
                _obj({"host": {"type": "string", "enum": list(dev_hosts),
                               "description": "The dev host."},
                      "command": {"type": "string", "description": COMMAND_DOC},
                      "timeout": timeout,
                      "background": {"type": "boolean", "default": False,
                                     "description": "Start a long-running process."}},
                     ["host", "command"]),
            )
        )  # fmt: skip
    specs.append(
        ToolSpec(
            "submit",
            "Submit your workspace as it stands. The episode ends: everything you started is "
            "stopped, then your system is deployed on fresh hosts and graded.",
            _obj({}),
        )
    )
    return tuple(specs)


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
}


def validate_arguments(spec: ToolSpec, args: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``args`` against the tool's schema; return them with defaults filled in.

    A JSON null for an optional argument counts as leaving it out (models do that).
    """
    props: Mapping[str, Any] = spec.parameters.get("properties", {})
    required: Sequence[str] = spec.parameters.get("required", ())
    takes = ", ".join(props) or "no arguments"
    out: dict[str, Any] = {}
    for key, value in args.items():
        if key not in props:
            raise ToolError(f"{spec.name}: unexpected argument {key!r} (it takes {takes})")
        if value is None and key not in required:
            continue
        schema = props[key]
        kind = schema["type"]
        ok = isinstance(value, _TYPES[kind]) and (kind == "boolean" or not isinstance(value, bool))
        if ok and kind == "number":
            try:
                ok = math.isfinite(value) and abs(value) < MAX_NUMBER
            except OverflowError:  # an integer too large for a float
                ok = False
            if not ok:
                raise ToolError(
                    f"{spec.name}: argument {key!r} must be a finite number below "
                    f"{MAX_NUMBER:g}, not {str(value)[:40]!r}"
                )
        if not ok:
            raise ToolError(
                f"{spec.name}: argument {key!r} must be a {kind}, not {type(value).__name__} "
                f"({str(value)[:80]!r})"
            )
        if "enum" in schema and value not in schema["enum"]:
            raise ToolError(
                f"{spec.name}: {key} must be one of {', '.join(map(str, schema['enum']))}, "
                f"not {str(value)[:80]!r}"
            )
        if "exclusiveMinimum" in schema and not value > schema["exclusiveMinimum"]:
            raise ToolError(f"{spec.name}: {key} must be > {schema['exclusiveMinimum']}")
        if isinstance(value, str):
            _check_text(spec.name, key, value)
        out[key] = value
    missing = [k for k in required if k not in out]
    if missing:
        raise ToolError(
            f"{spec.name}: missing required argument(s) {', '.join(map(repr, missing))} "
            f"(it takes {takes})"
        )
    for key, schema in props.items():
        if key not in out and "default" in schema:
            out[key] = schema["default"]
    return out


# the kernel's limit on one argv string (MAX_ARG_STRLEN, 32 pages, with its NUL)
MAX_ARGUMENT_BYTES = 32 * 4096 - 1
MAX_NUMBER = 1e9  # no timeout or size a tool takes comes near it


def _check_text(tool: str, key: str, value: str) -> None:
    """Text a JSON escape can carry but no command, path or file can: a lone surrogate
    (not encodable as UTF-8) anywhere; outside file content, a NUL or more than one argv
    string holds."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ToolError(
            f"{tool}: argument {key!r} is not valid Unicode (a lone surrogate "
            f"{value[exc.start]!r} at character {exc.start}): send UTF-8 text"
        ) from None
    if key == "content":
        return
    if size > MAX_ARGUMENT_BYTES:
        raise ToolError(
            f"{tool}: argument {key!r} is {size} bytes, over the {MAX_ARGUMENT_BYTES} the "
            "kernel allows one argument: put a long script in a file with write_file and run "
            "the file"
        )
    if "\0" in value:
        raise ToolError(
            f"{tool}: argument {key!r} contains a NUL character (at character "
            f"{value.index(chr(0))}), which no command, path or host name can hold"
        )


def render_exec(r: ExecResult, timeout: float) -> str:
    """A command's output and how it ended, as the model reads it."""
    body = render_cut(r.output[: r.cut_at], r.output[r.cut_at :], r.cut_bytes)
    if r.timed_out:
        status = (
            f"[timed out after {timeout:g} s: the command and every process it started were killed]"
        )
    else:
        status = f"[exit code {r.exit_code}]"
    if not body:
        return f"(no output)\n{status}"
    return f"{body}{'' if body.endswith(chr(10)) else chr(10)}{status}"


@dataclass(frozen=True)
class Outcome:
    observation: ToolObservation
    submitted: bool = False
    exit_code: int | None = None
    timed_out: bool = False
    output_bytes: int = 0


class Toolbox:
    """Runs tool calls against one episode's workstation and dev cluster."""

    def __init__(
        self,
        workstation: AgentSandbox,
        cluster: Cluster | None,
        limits: TaskLimits,
        options: EnvOptions,
        host_env: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.workstation = workstation
        self.cluster = cluster
        self.limits = limits
        self.options = options
        # per dev host: the task's contract environment, added to every host_bash command
        self.host_env = dict(host_env or {})
        names = cluster.names if cluster is not None else []
        contract = dict.fromkeys(k for env in self.host_env.values() for k in env)
        self.specs = tool_specs(names, limits, options, list(contract))
        self._by_name = {s.name: s for s in self.specs}
        self._background = 0

    async def call(self, call: ToolCall, remaining_s: float) -> Outcome:
        """Run one tool call. Raises ToolError for the model's mistakes."""
        spec = self._by_name.get(call.name)
        if spec is None:
            raise ToolError(
                f"there is no tool {call.name[:80]!r}; the tools are {', '.join(self._by_name)}"
            )
        args = validate_arguments(spec, call.decoded_arguments())
        timeout = min(
            float(args.get("timeout") or self.limits.command_timeout_s),
            self.limits.command_timeout_s,
            max(remaining_s, 0.001),
        )
        if call.name == "bash":
            r = await self.workstation.exec(
                ["bash", "-c", args["command"]],
                timeout=timeout,
                max_output=self.options.max_output_bytes,
            )
            return self._exec_outcome(call, r, timeout)
        if call.name == "read_file":
            return await self._read(call, args["path"])
        if call.name == "write_file":
            return await self._write(call, args["path"], args["content"])
        if call.name == "host_bash":
            assert self.cluster is not None
            host = self.cluster.host(args["host"])
            env = self.host_env.get(host.name)
            if args["background"]:
                self._background += 1
                text = await host_start(host, f"bg{self._background}", args["command"], env)
                return Outcome(ToolObservation(text, call.name, call.id))
            r = await host_command(
                host, args["command"], timeout, self.options.max_output_bytes, env
            )
            return self._exec_outcome(call, r, timeout)
        assert call.name == "submit"
        text = "Submitted: your workspace is graded as it stands."
        return Outcome(ToolObservation(text, call.name, call.id), submitted=True)

    def _exec_outcome(self, call: ToolCall, r: ExecResult, timeout: float) -> Outcome:
        return Outcome(
            ToolObservation(render_exec(r, timeout), call.name, call.id),
            exit_code=r.exit_code,
            timed_out=r.timed_out,
            output_bytes=r.total_bytes,
        )

    async def _read(self, call: ToolCall, path: str) -> Outcome:
        limit = self.options.max_read_bytes
        try:
            f = await self.workstation.read_file(path, max_bytes=limit)
        except OSError as exc:
            raise ToolError(f"read_file: {exc}") from None
        if f.size > len(f.data):
            text = render_prefix(f.data) + (
                f"\n[... file truncated: showing the first {len(f.data):,} of {f.size:,} bytes "
                f"of {f.path}; read the rest with bash, e.g. "
                f"`tail -c +{len(f.data) + 1} {f.path} | head -c {limit}` ...]"
            )
        else:
            text = safe_text(f.data)
        return Outcome(ToolObservation(text, call.name, call.id), output_bytes=f.size)

    async def _write(self, call: ToolCall, path: str, content: str) -> Outcome:
        try:
            data = content.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ToolError(f"write_file: the content is not valid Unicode text: {exc}") from None
        if len(data) > self.options.max_write_bytes:
            raise ToolError(
                f"write_file: the content is {len(data):,} bytes; the limit is "
                f"{self.options.max_write_bytes:,} (write large files in parts with bash)"
            )
        try:
            real = await self.workstation.write_file(path, data)
        except OSError as exc:
            raise ToolError(f"write_file: {exc}") from None
        return Outcome(ToolObservation(f"wrote {len(data):,} bytes to {real}", call.name, call.id))
