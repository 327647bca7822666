"""The console's read models on SQLite and PostgreSQL: partitions summed, the history rule, adoption,
retention, reach, feedback and the portfolio's recommendations."""

from __future__ import annotations

from dataclasses import astuple, replace
from datetime import UTC, date, datetime, timedelta

import pytest

from experiments import board
from experiments import models as m
from experiments.readmodels import adoption as adoption_reads
from experiments.readmodels import catalog
from experiments.readmodels import exposure as exposure_reads
from experiments.readmodels import portfolio as portfolio_reads
from experiments.readmodels import voice as voice_reads
from experiments.results import experiment_results
from experiments.specs import parse_pilot_spec
from experiments.store import UNITS, Statistic, Store
from tests.support.seed import ExperimentPlan, pilot_yaml, seed_pilot

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
TODAY = NOW.date()


def _day(experiment: str, metric: str, variant: str, partition: int, day: date, n: int, total: float) -> dict:
    return {
        "experiment_key": experiment,
        "metric": metric,
        "variant": variant,
        "partition": partition,
        "day": day,
        "n": n,
        "sum": total,
        "sum_squares": total,
        "x_sum": 0.0,
        "x_sum_squares": 0.0,
        "sum_products": 0.0,
    }


def _apply(store: Store, key: str = "bikes", experiments: tuple[ExperimentPlan, ...] = (ExperimentPlan("trial"),)):
    spec = parse_pilot_spec(pilot_yaml(key, experiments, start=TODAY - timedelta(days=13)))
    store.apply_pilot(spec)
    return spec


def test_the_history_at_a_day_sums_the_participants_first_exposed_up_to_it_in_every_partition(store: Store) -> None:
    d = [TODAY - timedelta(days=3 - i) for i in range(4)]
    store.write_rows(
        {
            m.ExposureDay: [
                _day("trial", "converted", "control", 0, d[0], 10, 3.0),
                _day("trial", "converted", "control", 1, d[1], 5, 1.0),
                _day("trial", "converted", "control", 0, d[2], 4, 2.0),
                _day("trial", "converted", "guided", 1, d[3], 7, 2.0),
            ]
        }
    )
    series = exposure_reads.history_series(store, "trial")
    assert [day for day, _ in series] == d
    control = [stats["converted"].get("control") for _, stats in series]
    assert [(s.n, s.sum) for s in control if s] == [(10, 3.0), (15, 4.0), (19, 6.0), (19, 6.0)]
    assert "guided" not in series[2][1]["converted"]
    assert series[3][1]["converted"]["guided"] == Statistic(7, 2.0, 2.0, 0.0, 0.0, 0.0)


def test_a_backlog_written_at_once_shows_as_the_days_it_covers(store: Store) -> None:
    """Three weeks of participants processed in one write are three weeks of history, not one point."""
    spec = seed_pilot(store, "bikes", [ExperimentPlan("trial", participants=900)], days=21, participants=200, now=NOW)
    series = exposure_reads.history_series(store, "trial")
    assert len(series) >= 20
    assert series[0][0] <= TODAY - timedelta(days=20)
    looks = exposure_reads.monitoring(store, spec.experiments[0], ["converted"])
    assert len({p.day for p in looks}) == len(series)
    assert [p.units for p in looks] == sorted(p.units for p in looks)


def test_the_last_day_of_the_history_equals_the_current_aggregates_and_the_engines_result(store: Store) -> None:
    spec = seed_pilot(store, "bikes", [ExperimentPlan("trial", participants=800)], days=4, participants=200, now=NOW)
    last = exposure_reads.history_series(store, "trial")[-1][1]
    current = store.experiment_statistics("trial")
    for metric, by_variant in current.items():
        for variant, stat in by_variant.items():
            assert last[metric][variant].n == stat.n
            assert last[metric][variant].sum == pytest.approx(stat.sum, rel=1e-9)
            assert last[metric][variant].sum_squares == pytest.approx(stat.sum_squares, rel=1e-9)
    looks = exposure_reads.monitoring(store, spec.experiments[0], ["converted"])
    final = [p for p in looks if p.day == looks[-1].day]
    engine = experiment_results(store, "trial")["analysis"]["comparisons"]
    row = next(r for r in engine if r["metric"] == "converted")
    assert final[0].effect == pytest.approx(row["effect"], rel=1e-9)
    assert (final[0].ci_low, final[0].ci_high) == pytest.approx((row["ci_low"], row["ci_high"]), rel=1e-9)
    assert final[0].units == sum(s.n for s in current[UNITS].values())
    assert len({p.day for p in looks}) <= exposure_reads.MONITORING_LOOKS


def test_statistics_of_every_experiment_sum_the_partitions_like_the_store(store: Store) -> None:
    seed_pilot(
        store,
        "bikes",
        [ExperimentPlan("trial", participants=300), ExperimentPlan("other", treatments=("a", "b"), participants=300)],
        days=3,
        participants=100,
        partitions=3,
        now=NOW,
    )
    everything = exposure_reads.experiment_statistics(store)
    for key in ("trial", "other"):
        expected = store.experiment_statistics(key)
        assert everything[key].keys() == expected.keys()
        for metric, by_variant in expected.items():
            for variant, stat in by_variant.items():
                assert astuple(everything[key][metric][variant]) == pytest.approx(astuple(stat), rel=1e-12)


def test_the_pace_is_first_exposures_a_day_over_the_last_seven_complete_days_of_event_time(store: Store) -> None:
    _apply(
        store,
        experiments=(ExperimentPlan("trial"), ExperimentPlan("young"), ExperimentPlan("new"), ExperimentPlan("paused")),
    )
    rows = [
        # Before the window: not in the pace.
        _day("trial", UNITS, "control", 0, TODAY - timedelta(days=8), 100, 0.0),
        *(
            _day("trial", UNITS, v, p, TODAY - timedelta(days=k), 20, 0.0)
            for k in range(1, 8)
            for v, p in (("control", 0), ("guided", 1))
        ),
        # Today's participants are still arriving: not in the pace either.
        _day("trial", UNITS, "guided", 1, TODAY, 500, 0.0),
        _day("young", UNITS, "control", 0, TODAY - timedelta(days=2), 30, 0.0),
        _day("young", UNITS, "guided", 0, TODAY - timedelta(days=1), 30, 0.0),
        _day("new", UNITS, "control", 0, TODAY, 12, 0.0),
        _day("paused", UNITS, "control", 0, TODAY - timedelta(days=1), 50, 0.0),
    ]
    store.write_rows({m.ExposureDay: rows})
    store.set_status("paused", "stopped", actor="lab")
    experiments = catalog.stored_experiments(store)
    # When the experiments were registered says nothing of when their participants came.
    experiments = tuple(replace(e, started_at=NOW - timedelta(hours=1)) for e in experiments)
    units = {"trial": 880, "young": 60, "new": 12, "paused": 50}
    rates = exposure_reads.exposures(store, experiments, units, as_of=NOW)
    assert rates["trial"].units_per_day == pytest.approx(40.0)
    assert rates["trial"].rate_days == 7
    assert rates["trial"].days_to_reach == pytest.approx((4000 - 880) / 40.0)
    assert rates["young"].units_per_day == pytest.approx(60 / 2)
    assert rates["new"].units_per_day is None
    assert rates["new"].days_to_reach is None
    assert rates["paused"].units_per_day == 0.0
    assert rates["paused"].days_to_reach is None
    assert rates["trial"].progress == pytest.approx(880 / 4000)


def _adoption(pilot: str, day: date, segment: str, partition: int, active: int, new: int, activated: int) -> dict:
    return {
        "pilot_key": pilot,
        "day": day,
        "segment": segment,
        "partition": partition,
        "active": active,
        "new": new,
        "activated": activated,
    }


def test_adoption_series_reach_and_retention_sum_the_partitions(store: Store) -> None:
    spec = _apply(store)
    start = spec.start
    assert start is not None
    d1, d3 = start + timedelta(days=1), start + timedelta(days=3)
    monday = start - timedelta(days=start.weekday())
    store.write_rows(
        {
            m.DailyAdoption: [
                _adoption("bikes", d1, "", 0, 5, 5, 2),
                _adoption("bikes", d1, "", 1, 3, 3, 1),
                _adoption("bikes", d3, "", 0, 6, 2, 1),
                _adoption("bikes", d1, "district:north", 0, 5, 5, 2),
                _adoption("bikes", d3, "district:north", 1, 4, 2, 0),
                _adoption("bikes", d1, "channel:ios", 1, 3, 3, 1),
                _adoption("bikes", d1, "district:elsewhere", 1, 1, 1, 0),
            ],
            m.RetentionCohort: [
                {
                    "pilot_key": "bikes",
                    "cohort_week": monday,
                    "week_index": w,
                    "segment": "",
                    "partition": p,
                    "participants": n,
                }
                for w, p, n in ((0, 0, 6), (0, 1, 4), (1, 0, 3), (1, 1, 2), (2, 0, 1))
            ],
        }
    )
    series = adoption_reads.adoption_series(store, spec)
    assert [(r.day, r.active, r.new, r.returning, r.cumulative_adopters) for r in series] == [
        (start, 0, 0, 0, 0),
        (d1, 8, 8, 0, 8),
        (start + timedelta(days=2), 0, 0, 0, 8),
        (d3, 6, 2, 4, 10),
    ]
    assert series[-1].cumulative_activated == 4
    reach = {(r.segment, r.value): r.participants for r in adoption_reads.reach(store, spec)}
    assert reach[("district", "north")] == 7
    assert reach[("district", "south")] == 0
    assert reach[("district", "elsewhere")] == 1
    assert reach[("channel", "ios")] == 3
    summary = adoption_reads.adoption_summary(store, spec)
    assert summary.active_participants == 10
    assert summary.cumulative_adopters[-1] == (3.0, 10)
    assert ("channel", "ios", 3) in summary.active_by_segment
    matrix = adoption_reads.retention(store, spec, as_of=monday + timedelta(days=14))
    assert matrix.sizes == (10,)
    assert matrix.rates[0] == pytest.approx((1.0, 0.5, 0.1))


def _feedback(kind: str, bucket: str, partition: int, n: int, total: float, squares: float = 0.0) -> dict:
    return {
        "pilot_key": "bikes",
        "experiment_key": "",
        "variant": "",
        "kind": kind,
        "bucket": bucket,
        "partition": partition,
        "n": n,
        "sum": total,
        "sum_squares": squares,
    }


def test_voice_figures_and_ideas_ranked_by_net_votes(store: Store) -> None:
    _apply(store)
    texts = [
        {"event_id": f"idea-{i}", "pilot_key": "bikes", "participant_id": f"p{i}", "kind": "idea", "text": text,
         "occurred_at": NOW - timedelta(hours=i), "variants": {}}
        for i, text in enumerate(("Night service", "Cargo bikes", "Kids seats"))
    ] + [
        {"event_id": f"c-{i}", "pilot_key": "bikes", "participant_id": f"q{i}", "kind": "comment",
         "text": f"bike lanes {i}", "occurred_at": NOW - timedelta(minutes=i), "variants": {}}
        for i in range(3)
    ]  # fmt: skip
    store.write_rows(
        {
            m.FeedbackText: texts,
            m.FeedbackStat: [
                _feedback("rating", "5", 0, 3, 15.0),
                _feedback("rating", "5", 1, 1, 5.0),
                _feedback("rating", "2", 1, 2, 4.0),
                _feedback("nps", "promoter", 0, 6, 57.0),
                _feedback("nps", "detractor", 1, 2, 6.0),
                _feedback("nps", "passive", 1, 2, 15.0),
                _feedback("sus", "score", 0, 2, 150.0, 11300.0),
                _feedback("sus", "score", 1, 1, 80.0, 6400.0),
                _feedback("comment", "count", 0, 3, 0.0),
                _feedback("idea", "count", 1, 3, 0.0),
                _feedback("vote", "idea-0", 0, 3, 1.0),
                _feedback("vote", "idea-1", 0, 2, 2.0),
                _feedback("vote", "idea-1", 1, 2, 2.0),
            ],
        }
    )
    figures = voice_reads.voice_figures(store, "bikes")
    assert figures.rating.counts == (0, 2, 0, 0, 4)
    assert figures.rating.mean == pytest.approx(24 / 6)
    assert figures.nps == pytest.approx(100 * (6 - 2) / 10)
    assert figures.sus.respondents == 3
    assert figures.sus.mean == pytest.approx(230 / 3)
    assert figures.sus.sd == pytest.approx(((17700 - 230**2 / 3) / 2) ** 0.5)
    ideas = voice_reads.ranked_ideas(store, "bikes")
    assert [(i.text, i.votes, i.voters) for i in ideas] == [
        ("Cargo bikes", 4, 4),
        ("Night service", 1, 3),
        ("Kids seats", 0, 0),
    ]
    assert [c.text for c in voice_reads.recent_texts(store, "bikes")] == [
        "bike lanes 0",
        "bike lanes 1",
        "bike lanes 2",
    ]
    summary = voice_reads.voice_summary(store, "bikes")
    assert (summary.comment_count, summary.idea_count) == (3, 3)
    assert summary.top_ideas[0].text == "Cargo bikes"


def test_portfolio_recommendations_are_the_boards(store: Store) -> None:
    seed_pilot(
        store,
        "bikes",
        [ExperimentPlan("strong", effect=0.5, participants=2000), ExperimentPlan("flat", effect=0.0, participants=400)],
        days=5,
        participants=300,
        now=NOW,
    )
    store.apply_pilot(parse_pilot_spec(pilot_yaml("later", (ExperimentPlan("draft-one"),), start=TODAY)), start=False)
    rows = {row.key: row for row in portfolio_reads.portfolio(store, as_of=NOW)}
    assert set(rows) == {"bikes", "later"}
    for e in rows["bikes"].experiments:
        ev = board.evaluate(store, e.key, as_of=NOW)
        assert (e.recommendation, e.variant) == (ev.recommendation.outcome, ev.recommendation.variant)
        assert e.exposure == ev.exposure
    (draft,) = rows["later"].experiments
    assert (draft.status, draft.recommendation) == ("draft", None)
