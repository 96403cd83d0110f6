"""Tasks: folders with instructions, a starter workspace, a hidden grader and solutions."""

from ._operate import AddHosts, OperateSpec, PhaseFault, PhaseSpec
from ._registry import BUILTIN_DIR, find_task, hidden_paths, list_tasks, task_dirs
from ._spec import (
    DEFAULT_GRADING_CORES,
    Limits,
    Task,
    TaskSpec,
    Topology,
    load_task,
    validate_layout,
)
from ._validate import validate_task
from ._validation import STARTER, Band, Validation
from ._variants import Scalar, Variant

__all__ = [
    "BUILTIN_DIR",
    "DEFAULT_GRADING_CORES",
    "STARTER",
    "AddHosts",
    "Band",
    "Limits",
    "OperateSpec",
    "PhaseFault",
    "PhaseSpec",
    "Scalar",
    "Task",
    "TaskSpec",
    "Topology",
    "Validation",
    "Variant",
    "find_task",
    "hidden_paths",
    "list_tasks",
    "load_task",
    "task_dirs",
    "validate_layout",
    "validate_task",
]
