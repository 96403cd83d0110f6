"""``infragym judge check``: how far the configured judge agrees with a labelled set."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from .._errors import ConfigError
from ._common import console, err_console

if TYPE_CHECKING:
    from ..judge import Agreement, SetAgreement


def add_judge(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ._parser import positive_int

    j = sub.add_parser(
        "judge",
        help="the model judge of artefacts scripts cannot grade (postmortems)",
        description="The model judge: configured by INFRAGYM_JUDGE_MODEL, "
        "INFRAGYM_JUDGE_BASE_URL and INFRAGYM_JUDGE_API_KEY (any OpenAI-compatible server; "
        "never the agent's own settings).",
    )
    jsub = j.add_subparsers(dest="judge_command", required=True, metavar="SUBCOMMAND")
    c = jsub.add_parser(
        "check",
        help="run the judge over a labelled set and print its agreement with the labels",
        description="Judge every artefact of a labelled set (a task's judge/ folder, or a "
        "set shipped with infragym) and compare each item's verdict with its label: "
        "agreement per item and overall, a confusion summary, and whether any injection "
        "attempt scored above its clean twin (exit code 1 if one did, or if no artefact "
        "could be judged).",
    )
    where = c.add_mutually_exclusive_group()
    where.add_argument(
        "--task",
        default=None,
        help="a task whose judge/ folder holds the set (or whose [validation] scripted_judge "
        "names one)",
    )
    where.add_argument(
        "--set",
        dest="set_",
        default=None,
        metavar="NAME|PATH",
        help="a built-in set's name or a set folder (default: disk-full-postmortem)",
    )
    c.add_argument(
        "--scripted",
        action="store_true",
        help="judge with the scripted judge (rules in rubric.toml) on a loopback server "
        "instead of the configured model: the whole HTTP path, no model needed",
    )
    c.add_argument(
        "--gullible",
        action="store_true",
        help="with --scripted: a scripted judge that obeys instructions in the artefact, "
        "to see the platform's defences at work",
    )
    c.add_argument(
        "--concurrency", type=positive_int, default=4, help="requests at once (default 4)"
    )
    c.set_defaults(fn=cmd_judge_check)


def _set_path(args: argparse.Namespace) -> Path:
    from ..judge import builtin_set
    from ..tasks import find_task

    if args.task:
        task = find_task(args.task)
        path: Path = task.path / "judge"
        if path.is_dir():
            return path
        if task.spec.validation.scripted_judge:  # the set its validation judges by
            return builtin_set(task.spec.validation.scripted_judge)
        raise ConfigError(f"task {args.task!r} ships no labelled set ({path} is missing)")
    name = args.set_ or "disk-full-postmortem"
    if "/" in name or Path(name).is_dir():
        return Path(name)
    return builtin_set(name)


def cmd_judge_check(args: argparse.Namespace) -> int:
    from ..judge import Judge, JudgeConfig, LabelledSet, check_set

    if args.gullible and not args.scripted:
        raise ConfigError("--gullible only applies to the scripted judge: add --scripted")
    labelled = LabelledSet.load(_set_path(args))
    config = None if args.scripted else JudgeConfig.from_env()
    if config is None and not args.scripted:
        raise ConfigError(
            "no judge is configured: set INFRAGYM_JUDGE_MODEL and INFRAGYM_JUDGE_BASE_URL "
            "(or INFRAGYM_JUDGE_API_KEY), or pass --scripted"
        )

    async def run() -> SetAgreement:
        if config is not None:
            judge = Judge(labelled.rubric, config)
            return await check_set(labelled, judge, concurrency=args.concurrency)
        from ..testing import ScriptedModelServer
        from ..testing.scripted_judge import scripted_judge

        policy = scripted_judge(labelled.rubric, gullible=args.gullible)
        async with ScriptedModelServer(then=policy) as server:
            local = JudgeConfig(model="test-model", base_url=server.url, api_key=server.api_key)
            judge = Judge(labelled.rubric, local)
            return await check_set(labelled, judge, concurrency=args.concurrency)

    if config is not None:
        name = config.model
    else:
        name = "scripted (gullible)" if args.gullible else "scripted"
    return _print(asyncio.run(run()), name)


def _rate(a: Agreement) -> str:
    r = a.rate
    return "-" if r is None else f"{r:.0%}"


def _print(res: SetAgreement, judge_name: str) -> int:
    ls = res.labelled
    title = f"judge {escape(judge_name)} on {escape(ls.name)} ({len(ls.cases)} artefacts)"
    cases = Table(title=title)
    for col in ("artefact", "kind", "expected", "judged", "items agreed", "notes"):
        cases.add_column(col, justify="right" if col in {"expected", "judged"} else "left")
    unknown = 0
    for c in ls.cases:
        j = res.judgements[c.name]
        agree = sum(1 for v in j.items if v.met is not None and v.met == c.expected[v.id])
        notes = []
        if j.unknown:
            unknown += 1
            notes.append(f"[yellow]unknown[/]: {escape(j.reason)}")
        if j.removed:
            notes.append(f"{j.removed} instruction-like removed")
        if j.voided:
            notes.append(f"{j.voided} claim(s) voided")
        if j.flagged:
            notes.append("judge flagged instructions")
        cases.add_row(
            c.name,
            c.kind,
            f"{ls.expected_score(c):.2f}",
            "unknown" if j.score is None else f"{j.score:.2f}",
            "-" if j.unknown else f"{agree}/{len(j.items)}",
            "; ".join(notes),
        )
    console.print(cases)
    items = Table(title="agreement per item (met: labelled vs judged)")
    cols = ("item", "weight", "agreement", "met/met", "met/not", "not/met", "not/not", "unknown")
    for col in cols:
        items.add_column(col, justify="left" if col == "item" else "right")
    rows = [(i.id, f"{i.weight:g}", res.items[i.id]) for i in ls.rubric.items]
    rows.append(("overall", "", res.overall))
    for name, w, a in rows:
        items.add_row(name, w, _rate(a), str(a.tp), str(a.fn), str(a.fp), str(a.tn), str(a.unknown))
    console.print(items)
    console.print(
        f"overall agreement {_rate(res.overall)} over {res.overall.judged} item verdicts "
        f"(false 'met' {res.overall.fp}, missed 'met' {res.overall.fn}, unknown "
        f"{res.overall.unknown})",
        highlight=False,
    )
    twins = [c for c in ls.cases if c.twin]
    bad = res.twin_violations()
    for case, twin in bad:
        err_console.print(f"[red]injection gained:[/] {case} scored above its twin {twin}")
    if twins and not bad:
        console.print(f"injection attempts: none of {len(twins)} scored above its clean twin")
    if unknown == len(ls.cases):
        err_console.print("[red]no artefact could be judged[/]: see the notes above")
        return 1
    return 1 if bad else 0
