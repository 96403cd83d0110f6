"""The ``infragym`` command: list, show, validate, run, runs, report, node-resources, grade,
check, demo, doctor, cleanup.

The CLI only calls the public API. Every platform error is shown as one line saying what
to do, with exit code 2; a failed check is exit code 1. A signal stops a command after
removing what it made: exit code 130 (SIGINT), 143 (SIGTERM) or 129 (SIGHUP), with one
line and no traceback; a second signal during that teardown is ignored.

The commands live in private modules by what they serve: ``_tasks`` (list, show,
validate, grade), ``_play`` (play), ``_episodes`` (run, runs, report, export,
node-resources), ``_platform`` (check, demo, doctor, cleanup), with the parser in
``_parser`` and what they share in ``_common``. Heavy packages are imported inside the
commands, so ``infragym --help`` stays fast.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

from rich.markup import escape

from .._errors import InfraGymError
from ..report import verdict_table
from ._common import err_console
from ._parser import build_parser

__all__ = ["build_parser", "main", "verdict_table"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc: int = args.fn(args)
        return rc
    except InfraGymError as exc:
        # a message quotes paths and commands: pip install 'infragym[hf]' is not markup
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        return _interrupted(130)
    except SystemExit as exc:
        # SIGTERM or SIGHUP: infragym's handler unwound the run (exit code 128 + signal)
        if exc.code in _SIGNAL_CODES:
            return _interrupted(int(exc.code))
        raise


_SIGNAL_CODES = {128 + signal.SIGTERM, 128 + signal.SIGHUP}


def _interrupted(code: int) -> int:
    err_console.print("interrupted; everything this run created was removed")
    return code


if __name__ == "__main__":
    sys.exit(main())
