"""Grading: run a task's hidden grader on a fresh production cluster and record the result.

The parts a grader is built from beyond checkers and rubrics: :func:`deploy` starts the
agent's system by the task's contract on every host; :func:`run_tests` and
:func:`functional_result` make the functional gate; :func:`not_run` reports the checks a
failed gate skipped; :func:`read_capped` reads a service's answer without letting a huge
one fill the grading process. :func:`load_recheck` gives a task's own offline re-check of a
stored history (``infragym check`` uses it).
Every grading judges its own machine's health over its load window (:class:`Health`); an
overloaded one withholds its reward (``GradeResult.overloaded``), and :func:`wait_for_calm`
waits for a calmer machine before grading again. Before it builds anything a grading waits
for room on the machine (:class:`Admission`: the task's declared cores within
:func:`machine_cores`, first come first served, machine-wide), so more episodes at once
than the machine can grade give correct rewards more slowly, not withheld ones faster.

A live task's (``mode = "operate"``) phase graders get a :class:`LiveContext` on the live
production cluster; :func:`service_level` and :func:`episode_reward` make its episode's
reward (``_live``).

A service task's grader is mostly data: a :class:`ServiceGrader` (in the manner of a Jepsen
test map) holds the deployment :class:`Contract`, the :class:`Functional` tests run with an
:class:`HttpProbe` (a key-value service's stock ones: :func:`kv_functional_tests`), the
workload, the checkers, the rubric and the :class:`Phases`, and runs the skeleton they share
(deploy, functional gate, load under a fault schedule such as
:func:`infragym.nemesis.balanced_schedule`, heal, final reads, checks, :func:`finish`);
:func:`recheck` scores a stored history the same way offline.
"""

from ._admission import Admission, Capacity, default_concurrency, machine_cores
from ._bodies import read_capped
from ._context import GradeContext, GradeOutcome
from ._deploy import Deployment, deploy, wait_all_listening, wait_listening
from ._finish import finish, functional_of, recheck, record_functional
from ._functional import ExpectationFailed, functional_result, not_run, run_tests
from ._health import LIMITS, Health, HealthLimits, wait_for_calm
from ._kv_tests import kv_functional_tests
from ._live import (
    EpisodeReward,
    HostMetrics,
    LiveContext,
    PhaseScore,
    ServiceLevel,
    episode_reward,
    host_metrics,
    phase_score,
    phase_shares,
    service_level,
)
from ._pipeline import (
    MAX_WORKSPACE_BYTES,
    MAX_WORKSPACE_DEPTH,
    copy_workspace,
    grade_workspace,
    import_grader,
    load_grader,
)
from ._probe import HttpProbe, ProbeTest
from ._recheck import RecheckFn, load_recheck
from ._result import GRADE_SCHEMA_VERSION, GradeResult
from ._service import (
    Contract,
    FinalReadsFn,
    Functional,
    Phases,
    ServiceGrader,
    env_from_spec,
    kv_final_reads,
)
from ._together import StartAt, load_under_faults, measured

__all__ = [
    "GRADE_SCHEMA_VERSION",
    "LIMITS",
    "MAX_WORKSPACE_BYTES",
    "MAX_WORKSPACE_DEPTH",
    "Admission",
    "Capacity",
    "Contract",
    "Deployment",
    "EpisodeReward",
    "ExpectationFailed",
    "FinalReadsFn",
    "Functional",
    "GradeContext",
    "GradeOutcome",
    "GradeResult",
    "Health",
    "HealthLimits",
    "HostMetrics",
    "HttpProbe",
    "LiveContext",
    "PhaseScore",
    "Phases",
    "ProbeTest",
    "RecheckFn",
    "ServiceGrader",
    "ServiceLevel",
    "StartAt",
    "copy_workspace",
    "default_concurrency",
    "deploy",
    "env_from_spec",
    "episode_reward",
    "finish",
    "functional_of",
    "functional_result",
    "grade_workspace",
    "host_metrics",
    "import_grader",
    "kv_final_reads",
    "kv_functional_tests",
    "load_grader",
    "load_recheck",
    "load_under_faults",
    "machine_cores",
    "measured",
    "not_run",
    "phase_score",
    "phase_shares",
    "read_capped",
    "recheck",
    "record_functional",
    "run_tests",
    "service_level",
    "wait_all_listening",
    "wait_for_calm",
    "wait_listening",
]
