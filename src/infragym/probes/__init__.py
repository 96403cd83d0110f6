"""A catalogue of hack probes: systems under test, and agents, that cheat, break or
attack the grader.

A probe is what a trained policy may find pays, played against a task's grader:

- a **server** probe is a workspace of its own (``start.sh`` and ``probe.py``) that the
  grader deploys as it would an agent's: answer 200 to everything, refuse everything,
  answer too slowly, with bodies too big or not text, or never start;
- a **wrapping** probe is the task's own reference (``[validation] probe_base``, default
  ``robust``) on an inner port (``PORT`` + 1000) behind a stdlib front on the contract's
  ``PORT`` that cheats: honest at first and then refusing everything, a cache that never
  invalidates across hosts, every host forwarding to the first one. It needs ``PORT`` in
  the task's ``[contract.env]``;
- an **agent** probe is a scripted agent graded through a whole episode (sandbox, dev
  hosts, submit, grading): processes detached to outlive the agent's phase and put the
  reference in place of the submitted workspace, or a workspace that tampers with what
  the grader deploys and collects.

A task lists the probes that apply to it in ``task.toml``, each with its band::

    [validation]
    probes = ["always-200", "refuse-after-start", "outlive-agent"]
    probe_base = "robust"       # the reference wrapping probes are built on

    [validation.bands]
    always-200 = { max = 0.0 }

``infragym validate TASK --tiers`` and ``infragym.testing.check_task`` grade them beside
the task's own references and probes (``solutions/probe-*``, for cheats only that task's
contract allows).
"""

from __future__ import annotations

from ._catalogue import HEARTBEAT_PORT, PROBES, TAMPER_REPORT, Action, Kind, Probe, probe

__all__ = ["HEARTBEAT_PORT", "PROBES", "TAMPER_REPORT", "Action", "Kind", "Probe", "probe"]
