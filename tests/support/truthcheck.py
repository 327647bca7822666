"""Comparing what the store shows with the simulator's ground truth, with readable differences."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select

from experiments import models as m
from experiments.registry import PilotSpec
from experiments.store import Store
from services.simulator.truth import Truth


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def differences(store: Store, pilot: PilotSpec, truth: Truth, limit: int = 8) -> list[str]:
    """Returns how the store differs from the truth (empty when every figure is exact)."""
    out: list[str] = []
    for exp in pilot.experiments:
        stats = store.experiment_statistics(exp.key)
        want_all = truth.statistics.get(exp.key, {})
        for metric in {*want_all, *stats}:
            for variant in {*want_all.get(metric, {}), *stats.get(metric, {})}:
                want = want_all.get(metric, {}).get(variant, (0.0,) * 6)
                s = stats.get(metric, {}).get(variant)
                got = (s.n, s.sum, s.sum_squares, s.x_sum, s.x_sum_squares, s.sum_products) if s else (0.0,) * 6
                if not all(_close(a, b) for a, b in zip(got, want, strict=True)):
                    out.append(f"{exp.key}.{metric}.{variant}: store {got} != truth {want}")
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(m.DailyAdoption.day, func.sum(m.DailyAdoption.active), func.sum(m.DailyAdoption.new))
            .where(m.DailyAdoption.pilot_key == pilot.key, m.DailyAdoption.segment == "")
            .group_by(m.DailyAdoption.day)
        ).all()
        active = {d: int(a) for d, a, _ in rows if a}
        new = {d: int(n) for d, _, n in rows if n}
        fb = conn.execute(
            select(
                m.FeedbackStat.experiment_key, m.FeedbackStat.variant, m.FeedbackStat.kind, m.FeedbackStat.bucket,
                func.sum(m.FeedbackStat.n), func.sum(m.FeedbackStat.sum),
            )
            .where(m.FeedbackStat.pilot_key == pilot.key, m.FeedbackStat.kind != "vote")
            .group_by(m.FeedbackStat.experiment_key, m.FeedbackStat.variant, m.FeedbackStat.kind, m.FeedbackStat.bucket)
        ).all()  # fmt: skip
        # Every comment and idea counted is also stored as a text for the console.
        texts = dict(
            conn.execute(
                select(m.FeedbackText.kind, func.count())
                .where(m.FeedbackText.pilot_key == pilot.key)
                .group_by(m.FeedbackText.kind)
            ).all()
        )
    for kind in ("comment", "idea"):
        counted = int(truth.feedback.get(("", "", kind, "count"), (0.0, 0.0))[0])
        if texts.get(kind, 0) != counted:
            out.append(f"{kind} texts: store {texts.get(kind, 0)} != truth {counted}")
    if active != dict(truth.active):
        out.append(
            f"daily active: store {sorted(active.items())[:5]}... != truth {sorted(truth.active.items())[:5]}..."
        )
    if new != dict(truth.new):
        out.append("daily new participants differ")
    feedback: dict[tuple[str, str, str, str], tuple[float, float]] = defaultdict(lambda: (0.0, 0.0))
    for e, v, k, b, n, total in fb:
        if n:
            feedback[(e, v, k, b)] = (float(n), float(total or 0.0))
    for key in {*feedback, *truth.feedback}:
        got_fb, want_fb = feedback.get(key, (0.0, 0.0)), truth.feedback.get(key, (0.0, 0.0))
        if not (_close(got_fb[0], want_fb[0]) and _close(got_fb[1], want_fb[1])):
            out.append(f"feedback {key}: store {got_fb} != truth {want_fb}")
    return out[:limit]
