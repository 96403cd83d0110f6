"""Golden histories: stored JSONL runs with the verdict every checker must give.

Each ``tests/golden/*.jsonl`` declares its expected verdicts in its header's meta; see
``tests/golden/make_golden.py`` for how each was built and why it should pass or fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from infragym import ConfigError, checkers
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
    run_checker,
)
from infragym.history import History

GOLDEN_DIR = Path(__file__).parent / "golden"
GOLDEN = sorted(GOLDEN_DIR.glob("*.jsonl"))


def golden_checkers() -> list[Checker]:
    return [
        Availability(min_ops=5),
        Latency(p99=0.5, min_ops=5),
        LostWrites(),
        StaleReads(),
        Linearizable(),
    ]


def test_golden_set_covers_every_checker_both_ways() -> None:
    seen: dict[str, set[str]] = {}
    for path in GOLDEN:
        for name, verdict in History.read_jsonl(path).meta["expect"].items():
            seen.setdefault(name, set()).add(verdict)
    assert len(GOLDEN) >= 9
    for c in golden_checkers():
        assert {"pass", "fail", "unknown"} <= seen[c.name], c.name


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_verdicts(path: Path) -> None:
    hist = History.read_jsonl(path)
    expect = hist.meta["expect"]
    results = check_all(golden_checkers(), hist)
    got = {name: r.verdict.value for name, r in results.items()}
    assert got == expect, {n: results[n].explanation for n in got if got[n] != expect[n]}
    for r in results.values():
        assert 0.0 <= r.score <= 1.0
        assert r.explanation
        if r.verdict is Verdict.PASS:
            assert r.score == 1.0


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_round_trip_gives_identical_results(path: Path, tmp_path: Path) -> None:
    hist = History.read_jsonl(path)
    again = History.read_jsonl(hist.write_jsonl(tmp_path / "again.jsonl"))
    assert check_all(golden_checkers(), hist) == check_all(golden_checkers(), again)


def test_verdicts_survive_round_trip_of_tuple_values(tmp_path: Path) -> None:
    from histories import HistoryBuilder

    b = HistoryBuilder()
    b.write("k", (1, 2), 0.0, 0.1)
    b.cas("k", (1, 2), (3, 4), 0.2, 0.3)
    b.read("k", (3, 4), 0.4, 0.5)
    hist = b.build()
    again = History.read_jsonl(hist.write_jsonl(tmp_path / "h.jsonl"))
    assert isinstance(again.operations()[2].result, list)
    for c in (Linearizable(), StaleReads(), LostWrites()):
        assert c.check(hist).verdict is Verdict.PASS
        assert c.check(again) == c.check(hist)


def test_list_and_tuple_values_compare_equal() -> None:
    """A live workload may write a tuple and parse the server's JSON answer as a list."""
    from histories import HistoryBuilder

    b = HistoryBuilder()
    b.write("k", (1, 2), 0.0, 0.1)
    b.read("k", [1, 2], 0.2, 0.3)
    b.cas("k", [1, 2], ("a", {"b": [3]}), 0.4, 0.5)
    b.read("k", ["a", {"b": (3,)}], 0.6, 0.7)
    hist = b.build()
    for c in (Linearizable(), StaleReads(), LostWrites()):
        assert c.check(hist).verdict is Verdict.PASS, c.check(hist).explanation


@dataclass(frozen=True)
class _Crashing:
    name: str = "crashing"

    def check(self, history: History) -> CheckResult:
        raise ZeroDivisionError("boom")


def test_crashing_checker_gives_unknown_through_run_checker() -> None:
    res = run_checker(_Crashing(), History())
    assert res.verdict is Verdict.UNKNOWN
    assert res.score == 0.0
    assert "ZeroDivisionError: boom" in res.explanation
    assert check_all([_Crashing()], History())["crashing"] == res


def test_malformed_cas_is_unknown_not_a_crash() -> None:
    from histories import HistoryBuilder

    b = HistoryBuilder()
    b.op("cas", "k", 5, t=0.0, done=0.1)
    b.read("k", None, 0.2, 0.3)
    hist = b.build()
    for c in (Linearizable(), StaleReads()):
        res = run_checker(c, hist)
        assert res.verdict is Verdict.UNKNOWN
        assert "expected [expected, new]" in res.explanation


def test_check_all_rejects_duplicate_names() -> None:
    with pytest.raises(ConfigError, match="distinct name"):
        check_all([Latency(), Latency(p99=1.0)], History())
    assert set(check_all([Latency(), Latency(name="read-latency", f="read")], History())) == {
        "latency",
        "read-latency",
    }


def test_public_api_is_what_it_says() -> None:
    # ruff's order (RUF022): constants, then classes, then functions, each alphabetical
    kind = {True: 0, False: 1}
    order = sorted(checkers.__all__, key=lambda n: (kind[n.isupper()], not n[0].isupper(), n))
    assert order == checkers.__all__
    for name in checkers.__all__:
        assert getattr(checkers, name) is not None
    public = {n for n in dir(checkers) if not n.startswith("_")}
    assert public - set(checkers.__all__) == set()


def test_checkers_are_frozen_specs() -> None:
    for c in golden_checkers():
        with pytest.raises(AttributeError):
            c.name = "other"  # type: ignore[misc]
