"""The pilots and experiments as registered: specs parsed once per distinct document, statuses and dates."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from experiments import models as m
from experiments.registry import PilotSpec
from experiments.specs import experiment_from_dict, spec_from_dict
from experiments.store import Store, StoredExperiment, canonical_json


def as_utc(t: datetime | None) -> datetime | None:
    """Returns the time in UTC (SQLite gives back naive datetimes, PostgreSQL the session's zone)."""
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


#: Pilot specs already parsed, by the exact JSON they were parsed from (parsing is the slow part).
_PARSED: dict[bytes, PilotSpec] = {}
_PARSED_LIMIT = 4096


def _parsed(document: dict[str, Any]) -> PilotSpec:
    """Returns the spec of a pilot document, parsed once per distinct document."""
    text = canonical_json(document)
    spec = _PARSED.get(text)
    if spec is None:
        if len(_PARSED) >= _PARSED_LIMIT:
            _PARSED.clear()
        spec = _PARSED[text] = spec_from_dict(document)
    return spec


def pilot_specs(store: Store) -> dict[str, PilotSpec]:
    """Returns every pilot's spec with its experiments, by key, in two queries."""
    with store.engine.connect() as conn:
        pilots = conn.execute(select(m.Pilot.key, m.Pilot.spec).order_by(m.Pilot.key)).all()
        experiments = conn.execute(
            select(m.Experiment.pilot_key, m.Experiment.spec).order_by(m.Experiment.created_at, m.Experiment.key)
        ).all()
    by_pilot: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pilot_key, spec in experiments:
        by_pilot[pilot_key].append(spec)
    return {key: _parsed({**spec, "experiments": by_pilot.get(key, [])}) for key, spec in pilots}


def stored_experiments(
    store: Store, pilot: str | None = None, *, specs: Mapping[str, PilotSpec] | None = None
) -> tuple[StoredExperiment, ...]:
    """Returns the experiments (of one pilot, or all) with status and dates, in creation order.

    With `specs` (from `pilot_specs`), each experiment's spec is taken from its pilot's instead of
    being parsed again.
    """
    e = m.Experiment
    q = select(e.key, e.spec, e.pilot_key, e.status, e.started_at, e.stopped_at).order_by(
        e.pilot_key, e.created_at, e.key
    )
    if pilot is not None:
        q = q.where(e.pilot_key == pilot)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    return tuple(
        StoredExperiment(
            specs[pilot_key].experiment(key) if specs is not None else experiment_from_dict(spec),
            pilot_key,
            status,
            as_utc(started),
            as_utc(stopped),
        )
        for key, spec, pilot_key, status, started, stopped in rows
    )
