"""One episode at a time: reset builds the sandbox, step runs tool calls, the end grades.

The lifecycle follows the design's security model. At submit, at the step limit or at the
wall-time limit, every agent process is killed (the workstation's cgroup and every dev
host's) before anything else, the dev cluster is removed, and the workspace, which nothing
of the agent can touch any more, is graded by the task's hidden grader on a fresh cluster.
Then everything is torn down. A platform failure at any point tears down too and raises
:class:`EpisodeError`: no reward, never a reward of 0. Cancellation, SIGINT and SIGTERM
tear down as well; what a SIGKILL leaves, ``infragym cleanup`` sweeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from .._errors import ConfigError, ResourceError
from ..grading import (
    MAX_WORKSPACE_BYTES,
    MAX_WORKSPACE_DEPTH,
    GradeResult,
    grade_workspace,
    wait_for_calm,
)
from ..sandbox import Cluster, Workstation, install_handlers, walk_tree
from ..tasks import Task, Variant, find_task, hidden_paths
from ._live import LiveEpisode, episode_hosts, growth_plan, ticket_text
from ._live_tools import live_tool_specs
from ._tools import Outcome, Toolbox, tool_specs
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

__all__ = ["Env", "make"]

T = TypeVar("T")


@dataclass
class _Episode:
    seed: int
    variant: Variant
    dir: Path
    cluster: Cluster | None = None
    workstation: Workstation | None = None
    toolbox: Toolbox | None = None
    started: float = 0.0
    deadline: float = 0.0
    steps: int = 0


class Env:
    """The environment of one task. ``await reset(seed=...)``, then ``await step(action)``
    until ``terminated`` or ``truncated``; ``await close()`` (or ``async with``) at the end.

    The seed draws the task's variant (``variant``): the ``instructions`` the agent is
    told, its ``dev_hosts`` and their contract environment, and the ``tools`` (whose
    ``host_bash`` names those hosts) are the episode's; before the first reset, the
    default variant's.
    """

    def __init__(self, task: Task, options: EnvOptions | None = None) -> None:
        self.task = task
        self.options = options or EnvOptions()
        if self.options.workspace_bytes > MAX_WORKSPACE_BYTES:
            raise ConfigError(
                f"workspace_bytes must be at most {MAX_WORKSPACE_BYTES} (what grading accepts)"
            )
        self.limits = self.options.task_limits(task.spec.limits)
        self.variant = task.spec.variant()
        self.instructions = ""
        self.dev_hosts: tuple[str, ...] = ()
        self.tools: tuple[ToolSpec, ...] = ()
        self._use_variant(self.variant)
        self._ep: _Episode | None = None
        self._live: LiveEpisode | None = None
        self._busy = False
        # the rewards the last episode's phases gave, in order (live episodes)
        self.phase_rewards: list[dict[str, Any]] = []

    def _use_variant(self, variant: Variant) -> None:
        self.instructions = self.task.render_instructions(variant)
        self.variant = variant
        op = self.task.spec.operate
        if op is not None:  # a live episode: production hosts, the first ticket
            self.dev_hosts = ()
            plan = growth_plan(self.task, variant)
            self.instructions += "\n\n" + ticket_text(self.task, plan, 0)
            hosts = episode_hosts(self.task, variant)
            self.tools = live_tool_specs(hosts, op, self.limits, self.options)
            return
        self.dev_hosts = variant.dev_host_names
        self.tools = tool_specs(
            self.dev_hosts, self.limits, self.options, self.task.spec.contract_names()
        )

    def __repr__(self) -> str:
        return f"Env({self.task.name!r})"

    @property
    def workstation(self) -> Workstation | None:
        """The running episode's workstation (None between episodes)."""
        return self._ep.workstation if self._ep else None

    @property
    def dev_cluster(self) -> Cluster | None:
        """The running episode's dev hosts (None between episodes or without dev hosts)."""
        return self._ep.cluster if self._ep else None

    @property
    def live(self) -> LiveEpisode | None:
        """The running live episode (``mode = "operate"``; None otherwise): its production
        cluster, history, phase and scores so far."""
        return self._live

    # -- the episode ---------------------------------------------------------------------

    async def reset(self, *, seed: int | None = None) -> ResetObservation:
        """Start an episode (ending any running one, ungraded); ``seed`` fixes the
        variant and grading (None: a random seed, reported in the observation)."""
        if seed is None:
            seed = secrets.randbelow(2**31)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"seed must be a whole number >= 0, not {seed!r}")
        self.task.require_ready()  # missing packages: a platform error, before any sandbox
        await self.close()
        variant = self.task.spec.variant(seed)
        self._use_variant(variant)
        install_handlers()  # from this thread: the sandbox is built in a worker
        if self.task.spec.operate is not None:
            return await self._reset_live(seed, variant)
        ep = _Episode(seed, variant, self._episode_dir(seed))
        self._ep = ep
        try:
            await _in_thread(lambda: self._build(ep))
        except BaseException:
            await self.close()
            with contextlib.suppress(OSError):
                ep.dir.rmdir()  # only if nothing was written there
            raise
        assert ep.workstation is not None
        hosts = {h.name: h.address for h in ep.cluster.hosts} if ep.cluster else {}
        subnet = ep.cluster.subnet if ep.cluster else None
        contract = {n: self.task.spec.host_env(n, hosts, variant, subnet) for n in hosts}
        ep.toolbox = Toolbox(ep.workstation, ep.cluster, self.limits, self.options, contract)
        ep.started = time.monotonic()
        ep.deadline = ep.started + self.limits.agent_wall_s
        return ResetObservation(
            instructions=self.instructions,
            tools=self.tools,
            task=self.task.name,
            seed=seed,
            dev_hosts=self.dev_hosts,
            limits=self.limits,
            variant=variant.to_dict(),
        )

    async def _reset_live(self, seed: int, variant: Variant) -> ResetObservation:
        live = LiveEpisode(
            self.task, seed, variant, self._episode_dir(seed), self.limits, self.options
        )
        self._live = live
        self.phase_rewards = []
        try:
            await live.start(_in_thread)
        except BaseException:
            await self.close()
            raise
        return ResetObservation(
            instructions=self.instructions,
            tools=self.tools,
            task=self.task.name,
            seed=seed,
            dev_hosts=(),
            limits=self.limits,
            variant=variant.to_dict(),
        )

    async def _step_live(self, live: LiveEpisode, call: ToolCall) -> StepResult:
        try:
            result = await live.step(call)
        except BaseException:
            if self._live is live:
                await self.close()
            raise
        phase = result.info.get("phase")
        if phase is not None:
            self.phase_rewards.append(
                {"step": result.info.get("step"), "phase": phase["name"],
                 "reward": phase["reward"], "contribution": phase["contribution"],
                 "step_reward": result.reward}
            )  # fmt: skip
        if result.terminated or result.truncated:
            try:
                await self.close()
            except Exception as exc:
                raise EpisodeError(
                    f"the episode was graded but its cluster was not fully removed ({exc}); "
                    "run `infragym cleanup`",
                    result.info.get("grade"),
                ) from exc
        return result

    def _episode_dir(self, seed: int) -> Path:
        base = Path(self.options.artifacts_dir or Path(tempfile.gettempdir()) / "infragym-episodes")
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        d = base / f"{self.task.name}-{stamp}-s{seed}-{secrets.token_hex(3)}"
        d.mkdir(mode=0o700)
        return d

    def _build(self, ep: _Episode) -> None:
        names = ep.variant.dev_host_names
        hidden = hidden_paths(self.task.path)
        if names:
            # the roles' resources and capabilities over the dev hosts' limits
            roles = ep.variant.cluster_options(names, self.options.dev_host_limits)
            ep.cluster = Cluster(
                list(names), artifacts_dir=ep.dir / "dev-hosts", hidden=hidden, **roles
            )
            ep.cluster.start()
        hosts = {h.name: h.address for h in ep.cluster.hosts} if ep.cluster else {}
        ep.workstation = Workstation(
            netns=ep.cluster.client_netns if ep.cluster else None,
            starter=self.task.workspace,
            hosts=hosts,
            hidden=hidden,
            limits=self.options.sandbox_limits,
            workspace_bytes=self.options.workspace_bytes,
            scratch_bytes=self.options.scratch_bytes,
            env={"INFRAGYM_DEV_HOSTS": " ".join(hosts)},
            identity=ep.cluster.identity if ep.cluster else None,
        )
        ep.workstation.start()
        for h in ep.cluster.hosts if ep.cluster else []:
            h.app_dir = ep.workstation.workspace  # a live, read-only view at /srv/app

    async def step(self, action: ToolCall | Mapping[str, Any]) -> StepResult:
        """Run one tool call. The final step (submit or a limit) carries the reward; in a
        live episode each phase's last step carries that phase's share of it."""
        if self._live is not None:
            if self._busy:
                raise ConfigError(
                    "a step is already running: steps of an episode run one at a time"
                )
            self._busy = True
            try:
                return await self._step_live(self._live, ToolCall.parse(action))
            finally:
                self._busy = False
        ep = self._ep
        if ep is None or ep.toolbox is None:
            raise EpisodeError("no episode is running: call reset() first")
        if self._busy:
            raise ConfigError("a step is already running: steps of an episode run one at a time")
        call = ToolCall.parse(action)
        self._busy = True
        try:
            return await self._step(ep, ep.toolbox, call)
        except BaseException:
            if self._ep is ep:
                await self.close()
            raise
        finally:
            self._busy = False

    async def _step(self, ep: _Episode, toolbox: Toolbox, call: ToolCall) -> StepResult:
        ep.steps += 1
        remaining = ep.deadline - time.monotonic()
        if remaining <= 0:
            text = (
                f"the agent's wall time of {self.limits.agent_wall_s:g} s is over: the "
                "episode ends and your workspace is graded as it stands"
            )
            obs = ToolObservation(text, call.name, call.id, is_error=True)
            return await self._finish(ep, obs, self._info(ep, call, None), "wall_time")
        try:
            out = await toolbox.call(call, remaining)
        except ToolError as exc:
            out = Outcome(ToolObservation(f"error: {exc}", call.name, call.id, is_error=True))
        except Exception as exc:
            raise EpisodeError(
                f"the platform failed while running {call.name}: {exc}; the episode is over "
                "and has no reward"
            ) from exc
        info = self._info(ep, call, out)
        if out.submitted:
            return await self._finish(ep, out.observation, info, "submit")
        if ep.steps >= self.limits.max_steps:
            return await self._finish(ep, out.observation, info, "max_steps")
        if time.monotonic() >= ep.deadline:
            return await self._finish(ep, out.observation, info, "wall_time")
        return StepResult(out.observation, 0.0, False, False, info)

    def _info(self, ep: _Episode, call: ToolCall, out: Outcome | None) -> StepInfo:
        info = StepInfo(step=ep.steps, elapsed_s=time.monotonic() - ep.started, tool=call.name)
        if out is not None:
            info["is_error"] = out.observation.is_error
            info["exit_code"] = out.exit_code
            info["timed_out"] = out.timed_out
            info["output_bytes"] = out.output_bytes
        return info

    async def _finish(
        self, ep: _Episode, obs: ToolObservation, info: StepInfo, reason: EndReason
    ) -> StepResult:
        info["end_reason"] = reason
        try:
            grade = await self._grade(ep)
        except Exception as exc:
            raise EpisodeError(
                f"grading failed: {exc}; the episode is over and has no reward"
            ) from exc
        try:
            await self.close()
        except Exception as exc:
            raise EpisodeError(
                f"the episode was graded but its sandbox was not fully removed ({exc}); "
                "run `infragym cleanup`",
                grade,
            ) from exc
        if grade.error is not None or grade.reward is None:
            raise EpisodeError(
                f"grading failed: {grade.error}; the episode is over and has no reward", grade
            )
        info["grade"] = grade
        return StepResult(obs, float(grade.reward), reason == "submit", reason != "submit", info)

    async def _grade(self, ep: _Episode) -> GradeResult:
        ws = ep.workstation
        assert ws is not None

        def stop_the_agent() -> None:
            ws.kill_all()
            if ep.cluster is not None:
                for h in ep.cluster.hosts:
                    h.kill_all()
                cluster, ep.cluster = ep.cluster, None
                cluster.close()
            _remove_special_files(ws.workspace)

        await _in_thread(stop_the_agent)
        size = _workspace_bytes(ws.workspace)
        if size > MAX_WORKSPACE_BYTES:
            # the agent's doing (e.g. sparse files), not the platform's: it scores 0
            return _undeployable(self.task.name, ep, size)
        progress = self.options.progress or (lambda msg: None)
        # an overloaded machine's grade is withheld (its measurements cannot be trusted):
        # grade again on a calmer machine, a bounded number of times
        retries = self.options.grade_retries
        for attempt in range(retries + 1):
            where = ep.dir / ("grading" if attempt == 0 else f"grading-retry{attempt}")
            grade = await grade_workspace(
                self.task, ws.workspace, ep.seed, where, progress=progress
            )
            if not grade.overloaded or attempt == retries:
                break
            progress(f"{grade.error}; waiting for a calmer machine to grade again")
            await wait_for_calm(self.options.grade_retry_wait_s)
        if grade.overloaded and retries:
            grade = grade.model_copy(
                update={
                    "error": f"{grade.error} (graded {retries + 1} times, overloaded each time)"
                }
            )
        return grade

    async def close(self) -> None:
        """End the running episode, ungraded, and remove everything it made."""
        live, self._live = self._live, None
        if live is not None:
            await live.close(_in_thread)
        ep, self._ep = self._ep, None
        if ep is None:
            return

        def teardown() -> None:
            errors: list[str] = []
            for what, fn in (
                ("workstation processes", ep.workstation.kill_all if ep.workstation else None),
                ("dev hosts", ep.cluster.close if ep.cluster else None),
                ("workstation", ep.workstation.close if ep.workstation else None),
            ):
                if fn is None:
                    continue
                try:
                    fn()
                except Exception as exc:
                    errors.append(f"{what}: {exc}")
            if errors:
                raise ResourceError("; ".join(errors))

        await _in_thread(teardown)

    async def __aenter__(self) -> Env:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def make(name: str, **options: Any) -> Env:
    """The environment of task ``name`` (a built-in or registered task, or a task folder's
    path); ``options`` are :class:`EnvOptions` fields."""
    return Env(find_task(name), EnvOptions.from_kwargs(**options))


async def _in_thread(fn: Callable[[], T]) -> T:
    """Run blocking kernel work off the event loop. If the caller is cancelled meanwhile,
    wait for the work anyway (a thread cannot be stopped) so what it made is torn down."""
    fut = asyncio.get_running_loop().run_in_executor(None, fn)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await asyncio.wait([fut])
        if fut.done() and not fut.cancelled():
            # retrieved: what a signal's teardown makes fail is no news ("Future exception
            # was never retrieved" with a traceback at exit)
            fut.exception()
        raise


def _remove_special_files(root: Path) -> None:
    """Drop FIFOs, sockets and devices: no deployment needs them and copies choke on them."""
    for dir_fd, name, st in walk_tree(root, MAX_WORKSPACE_DEPTH):
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dir_fd)


def _workspace_bytes(root: Path) -> int:
    """The bytes grading would copy, counted as grading counts them (apparent sizes)."""
    return sum(
        st.st_size for _, _, st in walk_tree(root, MAX_WORKSPACE_DEPTH) if stat.S_ISREG(st.st_mode)
    )


def _undeployable(task: str, ep: _Episode, size: int) -> GradeResult:
    note = (
        f"the workspace holds {size:,} bytes of files, more than the {MAX_WORKSPACE_BYTES:,} "
        "a deployment may be: it cannot be deployed, so it scores 0"
    )
    return GradeResult(
        task=task,
        seed=ep.seed,
        variant=ep.variant.to_dict(),
        reward=0.0,
        functional=0.0,
        artifacts_dir=str(ep.dir),
        notes=[note],
    )
