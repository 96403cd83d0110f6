"""Reports for people: tables of verdicts for the terminal, and the HTML report of runs.

:func:`write_report` makes ``infragym report RUN_DIR [RUN_DIR ...]``: one self-contained
HTML file (plotly.js inlined; it opens with no network) with, per task, each run's mean
reward and its bootstrap interval, the pass rate, the mean score per criterion and the
paired per-seed differences between runs; per episode, its fault timeline measured from
the grading's history and its transcript. Everything an episode wrote is escaped, and the
page's Content-Security-Policy runs only its own two scripts. The charts need plotly
(``pip install 'infragym[report]'``); the tables do not.

Above the runner (it reads run stores) and below the command line and the demo, which
print the same verdict tables.
"""

from ._charts import bucket_history
from ._runs import Episode, PassRule, Run, load_runs, pass_rule
from ._stats import Interval, Paired, bootstrap_mean, paired_differences
from ._tables import VERDICT_STYLE, verdict_table
from ._write import REPORT_FILE, render_report, write_report

__all__ = [
    "REPORT_FILE",
    "VERDICT_STYLE",
    "Episode",
    "Interval",
    "Paired",
    "PassRule",
    "Run",
    "bootstrap_mean",
    "bucket_history",
    "load_runs",
    "paired_differences",
    "pass_rule",
    "render_report",
    "verdict_table",
    "write_report",
]
