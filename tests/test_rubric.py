from __future__ import annotations

import json
import math
from pathlib import Path

import pydantic
import pytest
from histories import HistoryBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

import infragym.rubric as rubric_pkg
from infragym import ConfigError
from infragym.checkers import (
    Availability,
    Checker,
    CheckResult,
    Latency,
    Linearizable,
    LostWrites,
    StaleReads,
    Verdict,
    check_all,
)
from infragym.history import History
from infragym.rubric import Criterion, RewardResult, Rubric

GOLDEN = Path(__file__).parent / "golden"


def r(name: str, verdict: str, score: float, **metrics: float | str) -> CheckResult:
    return CheckResult(name, Verdict(verdict), score, f"{name} said {verdict}", metrics)


def test_weighted_mean_of_scores() -> None:
    rub = Rubric([Criterion("a", weight=3), Criterion("b", weight=1)])
    res = rub.score({"a": r("a", "pass", 1.0), "b": r("b", "fail", 0.0)})
    assert res.reward == pytest.approx(0.75)
    assert res.uncapped == pytest.approx(0.75)
    assert res.capped_by is None
    assert res.gates_failed == []
    a, b = res.breakdown
    assert (a.name, a.score, a.weight) == ("a", 1.0, 3.0)
    assert a.contribution == pytest.approx(0.75)
    assert (b.verdict, b.contribution, b.explanation) == (Verdict.FAIL, 0.0, "b said fail")


def test_failing_verdict_keeps_partial_credit() -> None:
    rub = Rubric([Criterion("avail")])
    assert rub.score({"avail": r("avail", "fail", 0.6)}).reward == pytest.approx(0.6)


def test_failed_gate_caps_the_reward_at_zero_by_default() -> None:
    rub = Rubric(
        [
            Criterion("linearizable", weight=0, gate=True),
            Criterion("availability", weight=1),
        ]
    )
    res = rub.score(
        {
            "linearizable": r("linearizable", "fail", 0.0),
            "availability": r("availability", "pass", 1.0),
        }
    )
    assert res.reward == 0.0
    assert res.uncapped == 1.0
    assert res.capped_by == "linearizable"
    assert res.gates_failed == ["linearizable"]
    assert res.criterion("linearizable").cap_applied == 0.0
    assert res.criterion("availability").cap_applied is None


def test_passing_gate_does_not_cap() -> None:
    rub = Rubric([Criterion("g", weight=1, gate=True), Criterion("x", weight=1)])
    res = rub.score({"g": r("g", "pass", 1.0), "x": r("x", "fail", 0.5)})
    assert res.reward == pytest.approx(0.75)
    assert res.gates_failed == []


def test_gate_cap_and_lowest_cap_wins() -> None:
    rub = Rubric(
        [
            Criterion("soft", weight=0, gate=True, cap=0.5),
            Criterion("softer", weight=0, gate=True, cap=0.3),
            Criterion("x", weight=1),
        ]
    )
    res = rub.score(
        {"soft": r("soft", "fail", 0), "softer": r("softer", "fail", 0), "x": r("x", "pass", 1)}
    )
    assert res.reward == 0.3
    assert res.capped_by == "softer"
    assert res.gates_failed == ["soft", "softer"]
    low = rub.score(
        {"soft": r("soft", "fail", 0), "softer": r("softer", "pass", 1), "x": r("x", "fail", 0.2)}
    )
    assert low.reward == pytest.approx(0.2)
    assert low.capped_by is None  # below the cap already
    assert low.gates_failed == ["soft"]


def test_unknown_fails_a_gate_and_scores_unknown_score() -> None:
    rub = Rubric([Criterion("g", weight=0, gate=True, cap=0.4), Criterion("x")])
    res = rub.score({"g": r("g", "unknown", 1.0), "x": r("x", "pass", 1.0)})
    assert res.reward == 0.4
    assert res.gates_failed == ["g"]
    zero = Rubric([Criterion("x")]).score({"x": r("x", "unknown", 0.9)})
    assert zero.reward == 0.0  # a checker's score is not trusted when it could not judge
    half = Rubric([Criterion("x", unknown_score=0.5)]).score({"x": r("x", "unknown", 0.9)})
    assert half.reward == 0.5


def test_score_fn_and_shared_check_result() -> None:
    def all_or_nothing(res: CheckResult) -> float:
        return 1.0 if res.verdict is Verdict.PASS else 0.0

    rub = Rubric(
        [
            Criterion("graded", check="latency"),
            Criterion("strict", check="latency", score_fn=all_or_nothing),
        ]
    )
    assert rub.checks == {"latency"}
    res = rub.score({"latency": r("latency", "fail", 0.8)})
    assert res.criterion("graded").score == 0.8
    assert res.criterion("strict").score == 0.0
    assert res.reward == pytest.approx(0.4)
    with pytest.raises(KeyError):
        res.criterion("absent")


@pytest.mark.parametrize("bad", [1.5, -0.1, math.nan])
def test_score_fn_out_of_range_is_a_config_error(bad: float) -> None:
    rub = Rubric([Criterion("x", score_fn=lambda _: bad)])
    with pytest.raises(ConfigError, match="score function"):
        rub.score({"x": r("x", "pass", 1.0)})


def test_missing_check_result_says_what_to_do() -> None:
    rub = Rubric([Criterion("lost-writes"), Criterion("avail", check="availability")])
    with pytest.raises(ConfigError, match=r"'availability', 'lost-writes'.*run those checkers"):
        rub.score({"latency": r("latency", "pass", 1.0)})


@pytest.mark.parametrize(
    ("criteria", "match"),
    [
        ([], "at least one criterion"),
        ([Criterion("a", weight=0), Criterion("b", weight=0, gate=True)], "positive weight"),
        ([Criterion("a"), Criterion("a", check="b")], "distinct name"),
    ],
)
def test_bad_rubrics_are_rejected(criteria: list[Criterion], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Rubric(criteria)


@pytest.mark.parametrize(
    "kw",
    [
        {"weight": -1.0},
        {"weight": math.nan},
        {"weight": math.inf},
        {"cap": 1.5},
        {"cap": -0.5},
        {"unknown_score": 2.0},
        {"name": ""},
    ],
)
def test_bad_criteria_are_rejected(kw: dict[str, object]) -> None:
    args: dict[str, object] = {"name": "c", **kw}
    with pytest.raises(ConfigError):
        Criterion(**args)  # type: ignore[arg-type]


def test_reward_result_round_trips_through_json() -> None:
    rub = Rubric([Criterion("lat", gate=True, cap=0.2), Criterion("x", weight=2)])
    res = rub.score(
        {
            "lat": r("lat", "fail", 0.0, p99_s=math.inf, count=3, worst="steady"),
            "x": r("x", "pass", 1.0),
        }
    )
    text = res.model_dump_json()
    data = json.loads(text)  # Python's parser reads the Infinity constant
    assert data["schema_version"] == 1
    assert data["breakdown"][0]["metrics"]["p99_s"] == math.inf
    back = RewardResult.model_validate_json(text)
    assert back == res
    assert back.breakdown[0].metrics == {"p99_s": math.inf, "count": 3, "worst": "steady"}
    assert isinstance(back.breakdown[0].metrics["count"], int)


def test_reward_result_rejects_other_schema_versions() -> None:
    res = Rubric([Criterion("x")]).score({"x": r("x", "pass", 1.0)})
    data = json.loads(res.model_dump_json())
    data["schema_version"] = 2
    with pytest.raises(pydantic.ValidationError):
        RewardResult.model_validate_json(json.dumps(data))


def test_rubric_is_an_immutable_spec() -> None:
    crits = [Criterion("a")]
    rub = Rubric(crits)
    crits.append(Criterion("b"))
    assert len(rub.criteria) == 1
    with pytest.raises(AttributeError):
        rub.criteria = ()  # type: ignore[misc]


def _grade(path: Path) -> RewardResult:
    rubric = Rubric(
        [
            Criterion("linearizable", weight=0, gate=True),
            Criterion("lost-writes", weight=3),
            Criterion("stale-reads", weight=1),
            Criterion("availability", weight=2),
            Criterion("latency", weight=1),
        ]
    )
    checkers: list[Checker] = [
        Availability(min_ops=5),
        Latency(p99=0.5, min_ops=5),
        LostWrites(),
        StaleReads(),
        Linearizable(),
    ]
    return rubric.score(check_all(checkers, History.read_jsonl(path)))


def test_gates_before_weights_on_golden_histories() -> None:
    good = _grade(GOLDEN / "register-sequential.jsonl")
    assert good.reward == 1.0
    blackhole = _grade(GOLDEN / "blackhole-server.jsonl")
    assert blackhole.criterion("availability").score == 1.0  # it answered every request
    assert blackhole.uncapped > 0.0
    assert blackhole.reward == 0.0
    assert blackhole.capped_by == "linearizable"
    empty = _grade(GOLDEN / "empty.jsonl")
    assert empty.reward == 0.0  # unknown everywhere earns nothing


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 10),
            st.booleans(),
            st.floats(0, 1),
            st.sampled_from(list(Verdict)),
            st.floats(0, 1),
        ),
        min_size=1,
        max_size=6,
    ).filter(lambda xs: sum(x[0] for x in xs) > 0)
)
def test_reward_is_bounded_and_respects_every_failed_gate(
    spec: list[tuple[float, bool, float, Verdict, float]],
) -> None:
    crits = [
        Criterion(f"c{i}", weight=w, gate=g, cap=cap) for i, (w, g, cap, _, _) in enumerate(spec)
    ]
    results = {f"c{i}": CheckResult(f"c{i}", v, s, "") for i, (_, _, _, v, s) in enumerate(spec)}
    res = Rubric(crits).score(results)
    assert 0.0 <= res.reward <= res.uncapped <= 1.0
    assert math.isclose(sum(c.contribution for c in res.breakdown), res.uncapped, abs_tol=1e-9)
    for c, (_, gate, cap, verdict, _) in zip(crits, spec, strict=True):
        if gate and verdict is not Verdict.PASS:
            assert res.reward <= cap
            assert c.name in res.gates_failed
    if not res.gates_failed:
        assert res.reward == res.uncapped


def test_public_api_is_what_it_says() -> None:
    assert sorted(rubric_pkg.__all__) == rubric_pkg.__all__
    public = {n for n in dir(rubric_pkg) if not n.startswith("_")}
    assert public == set(rubric_pkg.__all__)


# -- vacuity: a check that judged nothing is not a pass -----------------------------------


def judged(name: str, verdict: str, score: float, n: int | None) -> CheckResult:
    return CheckResult(name, Verdict(verdict), score, f"{name} said {verdict}", {}, judged=n)


def test_a_pass_that_judged_too_little_fails_and_is_listed() -> None:
    rub = Rubric(
        [
            Criterion("lin", weight=1, gate=True, cap=0.25),
            Criterion("stale", weight=1, min_judged=20),
            Criterion("avail", weight=2),
        ]
    )
    res = rub.score(
        {
            "lin": judged("lin", "pass", 1.0, 0),
            "stale": judged("stale", "pass", 1.0, 19),
            "avail": judged("avail", "pass", 1.0, 500),
        }
    )
    lin, stale, avail = res.breakdown
    assert (lin.verdict, lin.score, lin.vacuous, lin.judged) == (Verdict.FAIL, 0.0, True, 0)
    assert lin.explanation.startswith("vacuous: judged 0 < min 1")
    assert stale.verdict is Verdict.FAIL and "vacuous: judged 19 < min 20" in stale.explanation
    assert (avail.verdict, avail.vacuous, avail.judged) == (Verdict.PASS, False, 500)
    assert res.vacuous == ["lin", "stale"]
    assert res.gates_failed == ["lin"] and res.capped_by == "lin"
    assert res.uncapped == pytest.approx(0.5) and res.reward == pytest.approx(0.25)


def test_enough_judged_or_not_counted_is_taken_as_is() -> None:
    rub = Rubric([Criterion("a", min_judged=3), Criterion("b", min_judged=0)])
    res = rub.score({"a": judged("a", "pass", 1.0, 3), "b": judged("b", "pass", 1.0, 0)})
    assert res.reward == 1.0 and res.vacuous == []
    # a checker that does not count (judged None) is judged by its verdict alone
    assert rub.score({"a": r("a", "pass", 1.0), "b": r("b", "pass", 1.0)}).reward == 1.0


def test_unknown_and_vacuous_criteria_are_listed() -> None:
    rub = Rubric([Criterion("a"), Criterion("b"), Criterion("c")])
    res = rub.score(
        {
            "a": judged("a", "unknown", 0.0, 5),
            "b": judged("b", "unknown", 0.0, 0),  # vacuous and still unknown
            "c": judged("c", "fail", 0.4, 0),  # a fail stays a fail, and earns nothing
        }
    )
    assert res.unknown == ["a", "b"]
    assert res.vacuous == ["b", "c"]
    assert res.criterion("c").verdict is Verdict.FAIL and res.criterion("c").score == 0.0


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_bad_min_judged_is_rejected(bad: object) -> None:
    with pytest.raises(ConfigError, match="min_judged"):
        Criterion("c", min_judged=bad)  # type: ignore[arg-type]


def test_a_reward_written_before_the_vacuity_fields_still_reads() -> None:
    res = Rubric([Criterion("x")]).score({"x": judged("x", "pass", 1.0, 7)})
    data = json.loads(res.model_dump_json())
    for key in ("unknown", "vacuous"):
        del data[key]
    for key in ("judged", "vacuous"):
        del data["breakdown"][0][key]
    old = RewardResult.model_validate_json(json.dumps(data))
    assert old.reward == 1.0 and old.vacuous == [] and old.breakdown[0].judged is None


def refused_kv_history() -> History:
    """A service that answered every request 503 (refused) or timed out: nothing to judge."""
    b = HistoryBuilder()
    for i in range(30):
        t = i * 0.1
        b.write("k", f"v{i}", t, t + 0.01, outcome="fail", intended=t, node="n1")
        b.read("k", None, t + 0.05, t + 0.06, outcome="fail", intended=t + 0.05, node="n1")
    b.write("k", "late", 3.0, 4.0, outcome="info", intended=3.0, node="n1")
    return b.build()


def test_built_in_checkers_count_what_they_judged() -> None:
    good = History.read_jsonl(GOLDEN / "register-sequential.jsonl")
    checkers: list[Checker] = [
        Availability(min_ops=1),
        Latency(min_ops=1),
        LostWrites(),
        StaleReads(),
        Linearizable(),
    ]
    for name, res in check_all(checkers, good).items():
        assert res.judged is not None and res.judged > 0, (name, res)
    refused = check_all(checkers, refused_kv_history())
    assert refused["linearizable"].verdict is Verdict.PASS  # trivially: nothing succeeded
    assert refused["linearizable"].judged == 0
    assert refused["stale-reads"].judged == 0 and refused["lost-writes"].judged == 0
    assert refused["availability"].judged == 61


def test_a_refusing_service_cannot_pass_consistency_vacuously() -> None:
    rub = Rubric(
        [
            Criterion("linearizable", weight=2, gate=True, cap=0.25),
            Criterion("lost-writes", weight=3),
            Criterion("stale-reads", weight=1),
        ]
    )
    res = rub.score(check_all([Linearizable(), LostWrites(), StaleReads()], refused_kv_history()))
    assert res.reward == 0.0
    assert res.vacuous == ["linearizable", "lost-writes", "stale-reads"]
    assert "vacuous" in res.criterion("linearizable").explanation
