"""The sink on SQLite and PostgreSQL: after the processor rebuilds a partition's figures (a registry
change, a rebalance, a restart), the store holds exactly them, not the figures that no longer exist
beside them."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from experiments import models as m
from experiments import readmodels as rm
from experiments.registry import PilotSpec
from experiments.specs import parse_pilot_spec
from experiments.store import Store
from streams.events import new_event
from streams.processor import Outcome, ParticipantState, Processor, Registry
from streams.sink import Sink
from tests.support.records import decoded_record

SPEC = """
pilot: {key: lab, name: Lab, consent: collected_by_service, segments: [district], key_action: buy}
experiments:
  - key: exp
    variants: {a: 0.5, b: 0.5}
    metrics:
      - {key: bought, type: proportion, action: buy, window_days: 2}
    primary: bought
"""
DAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=3)


def pilot_of(store: Store, spec: PilotSpec) -> PilotSpec:
    store.apply_pilot(spec, force=True)
    return spec


def ev(kind: str, pid: str, payload: dict[str, object], days: float) -> bytes:
    return orjson.dumps(new_event(kind, "lab", pid, payload, occurred_at=DAY + timedelta(days=days)))  # type: ignore[arg-type]


def apply(proc: Processor, states: dict[str, ParticipantState], events: list[tuple[str, bytes]]) -> None:
    """Applies each participant's events (all in partition 0), keeping their states."""
    for pid in dict.fromkeys(p for p, _ in events):
        recs = [decoded_record(v, f"ns.{i}", 0, i, "ns.erasure") for i, (p, v) in enumerate(events) if p == pid]
        new = proc.process(states.get(pid), recs, Outcome())
        if new is not None:
            states[pid] = ParticipantState.from_bytes(new.to_bytes())
    proc.end_batch()


def flush(sink: Sink, proc: Processor) -> None:
    asyncio.run(sink.flush(proc, {0}))


def adoption_rows(store: Store) -> dict[tuple[str, str], tuple[int, int]]:
    """{(day, segment): (active, new)} of every row the store holds, summed over partitions."""
    out: dict[tuple[str, str], tuple[int, int]] = {}
    with store.session() as s:
        for row in s.query(m.DailyAdoption).all():
            key = (row.day.isoformat(), row.segment)
            active, new = out.get(key, (0, 0))
            out[key] = (active + row.active, new + row.new)
    return out


@pytest.mark.parametrize("change", ["consent", "segments"])
def test_after_a_rebuild_the_store_holds_only_the_figures_that_still_exist(store: Store, change: str) -> None:
    spec = pilot_of(store, parse_pilot_spec(SPEC))
    proc = Processor(Registry.of(store.pilot_runtimes()), grace_ms=30 * 86_400_000)
    sink = Sink(store)
    states: dict[str, ParticipantState] = {}
    events = [
        # p1 never gave consent: counted only while the pilot's service collects it.
        ("p1", ev("usage", "p1", {"action": "buy", "properties": {"district": "north"}}, 0)),
        ("p1", ev("exposure", "p1", {"experiment": "exp", "variant": "a"}, 0)),
        ("p2", ev("consent", "p2", {"granted": True}, 0)),
        ("p2", ev("usage", "p2", {"action": "ride", "properties": {"district": "south"}}, 1)),
    ]
    apply(proc, states, events)
    flush(sink, proc)
    day0, day1 = DAY.date().isoformat(), (DAY + timedelta(days=1)).date().isoformat()
    assert adoption_rows(store)[(day0, "")] == (1, 1)
    assert rm.adoption_segments(store, "lab") == ("district:north", "district:south")

    changed = replace(spec, consent="required") if change == "consent" else replace(spec, segments=("channel",))
    pilot_of(store, changed)
    proc.registry = Registry.of(store.pilot_runtimes())
    proc.rebuild(((pid, s) for pid, s in states.items()), [0])
    flush(sink, proc)

    rows = {k: v for k, v in adoption_rows(store).items() if v != (0, 0)}
    if change == "consent":
        # p1's day is no longer anyone's: no participant is counted active on it.
        assert rows == {(day1, ""): (1, 1), (day1, "district:south"): (1, 1)}
        assert rm.adoption_segments(store, "lab") == ("district:south",)
    else:
        assert rows == {(day0, ""): (1, 1), (day1, ""): (1, 1)}
        assert rm.adoption_segments(store, "lab") == ()
    # The experiment's figures and the retention cohorts are rewritten the same way: what the store
    # holds equals what the processor holds.
    assert proc.aggregates.everything() == {0: held(store)}
    # The experiment's history ends on the current figures: under `required` consent p1's exposure
    # no longer counts, and variant a's statistics end at zero.
    last = {
        (metric, variant): stat.n
        for metric, by_variant in rm.history_series(store, "exp")[-1][1].items()
        for variant, stat in by_variant.items()
    }
    assert last == (
        {("$units", "a"): 0, ("bought", "a"): 0} if change == "consent" else {("$units", "a"): 1, ("bought", "a"): 1}
    )


def held(store: Store) -> dict[tuple[object, ...], list[float]]:
    """The figures the store holds for partition 0, as the processor keys them."""
    out: dict[tuple[object, ...], list[float]] = {}
    with store.session() as s:
        for a in s.query(m.Aggregate).all():
            vec = [float(a.n), a.sum, a.sum_squares, a.x_sum, a.x_sum_squares, a.sum_products]
            out["lab", "a", a.experiment_key, a.metric, a.variant, a.segment] = vec
        for d in s.query(m.DailyAdoption).all():
            day = (d.day - datetime(1970, 1, 1).date()).days
            out["lab", "d", day, d.segment] = [float(d.active), float(d.new), float(d.activated)]
        for r in s.query(m.RetentionCohort).all():
            cohort = (r.cohort_week - datetime(1970, 1, 1).date()).days
            out["lab", "r", cohort, r.week_index, r.segment] = [float(r.participants)]
    return out


def test_a_failed_write_of_a_rebuilt_partition_is_replaced_at_the_next_flush(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = pilot_of(store, parse_pilot_spec(SPEC))
    proc = Processor(Registry.of(store.pilot_runtimes()), grace_ms=30 * 86_400_000)
    sink = Sink(store)
    states: dict[str, ParticipantState] = {}
    apply(proc, states, [("p1", ev("usage", "p1", {"action": "buy", "properties": {"district": "north"}}, 0))])
    flush(sink, proc)
    pilot_of(store, replace(spec, segments=()))
    proc.registry = Registry.of(store.pilot_runtimes())
    proc.rebuild(((pid, s) for pid, s in states.items()), [0])
    write = store.write_rows

    def fail_once(*args: object, **kwargs: object) -> None:
        monkeypatch.setattr(store, "write_rows", write)
        raise OSError("the database went away")

    monkeypatch.setattr(store, "write_rows", fail_once)
    flush(sink, proc)
    assert sink.failures == 1 and rm.adoption_segments(store, "lab") == ("district:north",)
    flush(sink, proc)
    assert rm.adoption_segments(store, "lab") == ()
    assert proc.aggregates.everything() == {0: held(store)}
