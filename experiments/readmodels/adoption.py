"""Adoption of a pilot: daily active, new and returning participants, reach by district, weekly retention
cohorts, and the Bass forecast's inputs.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import NamedTuple

from sqlalchemy import func, select

from experiments import models as m
from experiments.adoption import BassFit, RetentionMatrix, daily_adoption, fit_bass, retention_matrix
from experiments.registry import PilotSpec
from experiments.scorecard import AdoptionSummary
from experiments.store import Store


class AdoptionDay(NamedTuple):
    """One day of a pilot: active participants, first-time (new), returning and activated ones, and
    the cumulative adopters and activated participants up to that day."""

    day: date
    days_since_start: int
    active: int
    new: int
    returning: int
    activated: int
    cumulative_adopters: int
    cumulative_activated: int


def _start_of(pilot: PilotSpec, first_day: date) -> date:
    return first_day if pilot.start is None else min(pilot.start, first_day)


#: The most days an adoption series holds: its latest ones (the earlier participants still counted in
#: the cumulative figures). An event dated in the distant past (the year 4) would otherwise make a
#: series of hundreds of thousands of days.
SERIES_DAYS = 1100


def adoption_series(store: Store, pilot: PilotSpec, segment: str = "") -> tuple[AdoptionDay, ...]:
    """Returns the pilot's adoption day by day from its start (days without data count 0), the latest
    `SERIES_DAYS` days at most."""
    d = m.DailyAdoption
    q = (
        select(d.day, func.sum(d.active), func.sum(d.new), func.sum(d.activated))
        .where(d.pilot_key == pilot.key, d.segment == segment)
        .group_by(d.day)
        .order_by(d.day)
    )
    with store.engine.connect() as conn:
        rows = [(day, int(a or 0), int(n or 0), int(x or 0)) for day, a, n, x in conn.execute(q)]
    if not rows:
        return ()
    start = _start_of(pilot, rows[0][0])
    shown = max(start, rows[-1][0] - timedelta(days=SERIES_DAYS - 1))
    before = [r for r in rows if r[0] < shown]
    rows = [r for r in rows if r[0] >= shown]
    offset = (shown - start).days
    records = daily_adoption(shown, {r[0]: r[2] for r in rows}, {r[0]: r[1] for r in rows})
    activated = {r[0]: r[3] for r in rows}
    adopters = sum(r[2] for r in before)
    cumulative_activated = sum(r[3] for r in before)
    out = []
    for record in records:
        cumulative_activated += activated.get(record.day, 0)
        out.append(
            AdoptionDay(
                record.day,
                record.days_since_start + offset,
                record.active,
                record.new,
                record.returning,
                activated.get(record.day, 0),
                record.cumulative_adopters + adopters,
                cumulative_activated,
            )
        )
    return tuple(out)


def adoption_segments(store: Store, pilot: str) -> tuple[str, ...]:
    """Returns the segments ("district:north", ...) the pilot's adoption figures are broken down by."""
    d = m.DailyAdoption
    with store.engine.connect() as conn:
        return tuple(
            conn.scalars(select(d.segment).where(d.pilot_key == pilot, d.segment != "").distinct().order_by(d.segment))
        )


class Reach(NamedTuple):
    """The participants of one segment value ("district", "north"), and their share of its citizens
    when the pilot registers the district's population."""

    segment: str
    value: str
    participants: int
    population: int | None

    @property
    def share(self) -> float | None:
        """Returns participants / population, None when the population is unknown."""
        return None if not self.population else self.participants / self.population


def reach(store: Store, pilot: PilotSpec) -> tuple[Reach, ...]:
    """Returns the participants who ever used the pilot, by segment value, target districts first
    (a target district without participants is listed with 0)."""
    d = m.DailyAdoption
    q = (
        select(d.segment, func.sum(d.new))
        .where(d.pilot_key == pilot.key, d.segment != "")
        .group_by(d.segment)
        .order_by(d.segment)
    )
    with store.engine.connect() as conn:
        counts = {segment: int(n or 0) for segment, n in conn.execute(q)}
    population = dict(pilot.district_population)
    rows = [
        Reach("district", district, counts.pop(f"district:{district}", 0), population.get(district))
        for district in pilot.districts
    ]
    for segment, n in counts.items():
        name, _, value = segment.partition(":")
        rows.append(Reach(name, value, n, population.get(value) if name == "district" else None))
    return tuple(rows)


def retention(store: Store, pilot: PilotSpec, segment: str = "", *, as_of: date | None = None) -> RetentionMatrix:
    """Returns the pilot's weekly retention cohorts (cohort size = its participants active in week 0) of the
    latest `SERIES_DAYS` days."""
    r = m.RetentionCohort
    q = (
        select(r.cohort_week, r.week_index, func.sum(r.participants))
        .where(r.pilot_key == pilot.key, r.segment == segment)
        .group_by(r.cohort_week, r.week_index)
    )
    with store.engine.connect() as conn:
        counts = {(cohort, int(week)): int(n or 0) for cohort, week, n in conn.execute(q)}
    if as_of is None:
        d = m.DailyAdoption
        with store.engine.connect() as conn:
            as_of = conn.scalar(select(func.max(d.day)).where(d.pilot_key == pilot.key, d.segment == segment))
    # The cohorts of the latest `SERIES_DAYS` days, as the adoption series.
    first = None if as_of is None else as_of - timedelta(days=SERIES_DAYS - 1)
    sizes = {cohort: n for (cohort, week), n in counts.items() if week == 0 and (first is None or cohort >= first)}
    active = {(cohort, week): min(n, sizes[cohort]) for (cohort, week), n in counts.items() if cohort in sizes}
    return retention_matrix(sizes, active, as_of=as_of)


def adoption_summary(store: Store, pilot: PilotSpec) -> AdoptionSummary:
    """Returns the pilot's adoption as the scorecard reads it: participants ever active, by district and
    segment, and the cumulative adopters per day since the start."""
    d = m.DailyAdoption
    q = select(d.segment, func.sum(d.new)).where(d.pilot_key == pilot.key).group_by(d.segment)
    with store.engine.connect() as conn:
        totals = {segment: int(n or 0) for segment, n in conn.execute(q)}
    series = adoption_series(store, pilot)
    by_district = tuple((r.value, r.participants) for r in reach(store, pilot) if r.segment == "district")
    by_segment = []
    for segment, n in sorted(totals.items()):
        name, _, value = segment.partition(":")
        if segment and name != "district":
            by_segment.append((name, value, n))
    return AdoptionSummary(
        active_participants=totals.get("", 0),
        pilot_age_days=float(series[-1].days_since_start + 1) if series else 0.0,
        cumulative_adopters=tuple((float(r.days_since_start), r.cumulative_adopters) for r in series),
        start=series[0].day - timedelta(days=series[0].days_since_start) if series else None,
        active_by_district=by_district,
        active_by_segment=tuple(by_segment),
    )


def adoption_forecast(pilot: PilotSpec, adoption: AdoptionSummary) -> BassFit:
    """Returns the Bass diffusion fit of the pilot's cumulative adopters (population as the prior of m)."""
    return fit_bass(
        [day for day, _ in adoption.cumulative_adopters],
        [n for _, n in adoption.cumulative_adopters],
        market_potential_prior=pilot.population,
    )
