"""The parts graders are built from: deployment by contract and the functional gate."""

from __future__ import annotations

import asyncio

import pytest
from conftest import HTTP_SERVER, needs_root

from infragym.checkers import Verdict
from infragym.grading import (
    Deployment,
    ExpectationFailed,
    deploy,
    functional_result,
    not_run,
    run_tests,
    wait_all_listening,
)
from infragym.sandbox import HOST_PYTHON, Cluster


async def passes(_: object) -> None:
    pass


async def fails(_: object) -> None:
    raise ExpectationFailed("GET /x answered 500, expected 200")


async def hangs(_: object) -> None:
    await asyncio.sleep(30)


def test_tests_run_in_order_each_bounded_and_the_phase_too() -> None:
    seen: list[object] = []

    async def records(arg: object) -> None:
        seen.append(arg)

    tests = [("a", records), ("b", fails), ("c", hangs), ("d", passes), ("e", hangs),
             ("f", passes)]
    out = asyncio.run(run_tests(tests, "probe", per_test_s=0.3, total_s=0.5))
    assert seen == ["probe"]
    assert out["a"] is None and out["d"] is None
    assert out["b"] == "GET /x answered 500, expected 200"
    assert out["c"] == "the test did not finish within 0.3 s"
    assert out["e"] is not None and "did not finish" in out["e"]  # what was left of 0.5 s
    assert out["f"] == "not run: the functional tests took more than 0.5 s"
    assert list(out) == ["a", "b", "c", "d", "e", "f"]


def test_the_functional_result_is_the_fraction_passed_and_a_gate() -> None:
    r = functional_result({"a": None, "b": "boom", "c": None, "d": None})
    assert (r.verdict, r.score) == (Verdict.FAIL, 0.75)
    assert "1 of 4 functional tests failed: b: boom" in r.explanation
    assert r.metrics["test.b"] is False and r.metrics["passed"] == 3
    ok = functional_result({"a": None})
    assert (ok.verdict, ok.score) == (Verdict.PASS, 1.0)
    down = functional_result({}, "n1: nothing listens on port 8080 after 10 s")
    assert (down.verdict, down.score) == (Verdict.FAIL, 0.0) and "n1" in down.explanation
    assert functional_result({}).verdict is Verdict.FAIL  # nothing ran: never a pass


def test_skipped_checks_are_unknown_never_a_made_up_fail() -> None:
    out = not_run("the functional contract failed", ["a", "b"])
    assert set(out) == {"a", "b"}
    assert all(r.verdict is Verdict.UNKNOWN and "not run: the functional" in r.explanation
               for r in out.values())


@needs_root
def test_deploy_starts_the_contract_everywhere_and_says_why_a_host_did_not_come_up() -> None:
    # n2's start command fails at once; the others serve HTTP on the port
    start = ("sh", "-c", 'if [ "$ROLE" = bad ]; then echo "config error: no PEERS" >&2; '
             f'exit 3; fi; exec {HOST_PYTHON} -c "$SERVER" 0.0.0.0 8080')
    with Cluster(3) as c:
        env = {h.name: {"SERVER": HTTP_SERVER, "ROLE": "bad" if h.name == "n2" else "ok"}
               for h in c.hosts}

        async def main() -> tuple[Deployment, list[str]]:
            d = await deploy(c, start, lambda h: env[h.name], port=8080, timeout=5)
            return d, await wait_all_listening(c, 8080, 0.5)

        d, down = asyncio.run(main())
        assert set(d.processes) == {"n1", "n2", "n3"}
        assert d.urls["n1"] == f"http://{c.hosts[0].address}:8080"
        (problem,) = d.problems
        assert problem.startswith("n2: sh -c") and "exited with status 3" in problem
        assert "config error: no PEERS" in problem
        assert len(down) == 1 and down[0].startswith("n2:")
        assert c.hosts[0].run(["true"]).returncode == 0


@pytest.mark.parametrize("value", [0, -1])
def test_total_budget_spent_before_the_first_test(value: float) -> None:
    out = asyncio.run(run_tests([("a", passes)], None, per_test_s=1, total_s=value))
    assert out == {"a": f"not run: the functional tests took more than {value:g} s"}
