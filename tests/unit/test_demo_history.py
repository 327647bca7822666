"""The demo's history is posted so that the workers refuse none of it as late."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from experiments.specs import parse_pilot_spec
from services.simulator.citizens import BEHAVIOURS, generate
from services.simulator.demo import EXAMPLES, history_batches
from streams.events import format_time

START = datetime(2026, 11, 1, tzinfo=UTC)


def history(pilot: str, minutes: list[int]) -> list[dict[str, Any]]:
    return [
        {"event_id": f"{pilot}-{i}", "occurred_at": format_time(START + timedelta(minutes=m))}
        for i, m in enumerate(minutes)
    ]


def check(histories: dict[str, list[dict[str, Any]]], window: timedelta, batch: int) -> None:
    """Every event posted once, in batches of one pilot, each pilot's in time order, and none after an
    event more than `window` newer than itself (the most it can trail the partition's newest)."""
    posted: list[tuple[str, dict[str, Any]]] = []
    for pilot, events in history_batches(histories, window, batch):
        assert 0 < len(events) <= batch
        posted.extend((pilot, ev) for ev in events)
    assert sorted(ev["event_id"] for _, ev in posted) == sorted(
        ev["event_id"] for evs in histories.values() for ev in evs
    )
    newest: datetime | None = None
    last: dict[str, datetime] = {}
    for pilot, ev in posted:
        at = datetime.fromisoformat(ev["occurred_at"])
        assert ev in histories[pilot]
        assert at >= last.get(pilot, at), "a pilot's history out of time order"
        last[pilot] = at
        assert newest is None or newest - at < window, f"{ev['event_id']} posted {newest - at} behind the newest"
        newest = at if newest is None else max(newest, at)


@given(
    st.dictionaries(
        st.sampled_from(["bike-share", "parking-finder", "library"]),
        st.lists(st.integers(0, 30 * 24 * 60), max_size=60),
        max_size=3,
    ),
    st.integers(1, 48 * 60),
    st.integers(1, 7),
)
def test_history_batches_post_every_pilot_together_within_the_window(
    minutes: dict[str, list[int]], window_minutes: int, batch: int
) -> None:
    check({pilot: history(pilot, m) for pilot, m in minutes.items()}, timedelta(minutes=window_minutes), batch)


def test_the_demo_pilots_histories_trail_the_newest_event_by_less_than_the_grace_period() -> None:
    end = datetime(2026, 11, 27, tzinfo=UTC)
    histories = {}
    for name, participants in (("bike-share", 300), ("parking-finder", 200)):
        spec = parse_pilot_spec((EXAMPLES / f"{name}.yaml").read_text(), name)
        histories[spec.key] = generate(BEHAVIOURS[spec.key], spec, end - timedelta(days=21), end, participants, seed=7)
    check(histories, timedelta(hours=6), 500)
