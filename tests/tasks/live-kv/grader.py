"""Hidden grader of live-kv: the audit reads every key the clients wrote and scores the
share of acknowledged writes that survived (LostWrites)."""

from __future__ import annotations

from infragym.grading import LiveContext, PhaseScore


async def grade_shift(ctx: LiveContext) -> float:
    status, _ = await ctx.request("n1", "/health")
    return float(status == 200)


async def audit(ctx: LiveContext) -> PhaseScore:
    check = await ctx.lost_writes()
    metrics = {k: float(v) for k, v in check.metrics.items() if isinstance(v, (int, float))}
    return PhaseScore(
        check.score if check.verdict.value == "pass" else 0.0,
        metrics,
        [f"{check.verdict.value}: {check.explanation}"],
    )
