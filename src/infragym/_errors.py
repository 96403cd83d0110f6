"""The exception tree of infragym: every exception the platform defines derives from
:class:`InfraGymError`, so ``except InfraGymError`` catches whatever it raises on purpose
(``tests/test_public_api.py`` checks that every class is here and under the root).

::

    InfraGymError                  root: every error the platform raises on purpose
    ├── PrivilegeError             needs root / a capability the process lacks
    ├── CapabilityError            this machine cannot do what was asked (e.g. a fault kind)
    ├── ConfigError                invalid input: a topology, a fault spec, a schedule
    │   ├── TreeError              a tree that cannot be copied: too deep, too big (sandbox)
    │   └── ModelConfigError       an agent's bad key or unknown model (agent; also a
    │                              ModelError)
    ├── ResourceError              a host, namespace, cgroup or process could not be made
    │   └── ProcessError           a process on a host failed to start or misbehaved
    ├── HistoryError               a history file is malformed
    ├── ToolError                  a tool call the model got wrong; shown to it (env)
    ├── EpisodeError               the platform failed mid-episode: no reward (env)
    ├── ModelError                 the model server could not be used (agent)
    │   └── ModelConfigError
    ├── ExpectationFailed          a grader's functional test failed; its message says
    │                              why (grading; caught by ``run_tests``)
    ├── RequestNotSent             a workload request surely never reached the server
    ├── ResponseBroken             it may have, but no complete response came back
    │   └── BodyTooLarge           the response body is over the limit (workload)
    ├── Abort                      a proxied connection must be reset (nemesis, internal)
    ├── AnswerError                a judge's answer is not the JSON asked for; it is
    │                              asked again (judge, internal)
    ├── JudgeUnusable              the judge's server failed or kept answering badly:
    │                              the judgement is unknown (judge, internal)
    └── ShiftOver                  a live episode ended under an operator script: the
                                   script stops (agent, internal)

The last seven are outcomes the platform classifies itself (a failed test, an operation's
``fail`` or ``info``) rather than errors it lets out. Messages say what went wrong and
what to do about it.
"""

from __future__ import annotations


class InfraGymError(Exception):
    """Root of every error infragym raises on purpose."""


class PrivilegeError(InfraGymError):
    """The operation needs root (or a capability) that this process does not have."""


class CapabilityError(InfraGymError):
    """This machine cannot perform the requested operation (e.g. an unsupported fault)."""


class ConfigError(InfraGymError):
    """Invalid input: a topology, a fault specification, a schedule, a rubric."""


class ResourceError(InfraGymError):
    """A host, namespace, cgroup, mount or process could not be created or removed."""


class ProcessError(ResourceError):
    """A process on a host could not be started, or failed in a way the caller must know."""


class HistoryError(InfraGymError):
    """A stored history is malformed and cannot be checked."""
