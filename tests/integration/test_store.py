"""The SQL store on SQLite and on PostgreSQL (a real server started by the test session)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from experiments import models as m
from experiments.specs import parse_pilot_spec
from experiments.store import MIGRATIONS, LockedChangeError, Store, StoreError
from tests.support.waiting import wait_until

pytestmark = pytest.mark.postgres

#: The latest migration's revision.
HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()
SPEC = (__import__("pathlib").Path(__file__).resolve().parents[2] / "examples" / "bike-share.yaml").read_text()


def test_migrations_create_exactly_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), m.Base.metadata)
    assert diff == []
    assert store.schema_revision() == HEAD


def test_migrations_go_down_and_up_again(store: Store) -> None:
    store.downgrade("base")
    assert store.schema_revision() is None
    store.migrate()
    assert store.schema_revision() == HEAD


def test_applying_a_spec_twice_changes_nothing_and_keeps_declaration_order(store: Store) -> None:
    spec = parse_pilot_spec(SPEC)
    first = store.apply_pilot(spec, actor="ana")
    assert first.created and first.api_key and first.api_key.startswith("rhz_")
    second = store.apply_pilot(spec, actor="ana")
    assert not second.created and second.api_key is None and second.changes == ()
    assert store.pilot("bike-share") == spec
    assert store.experiment("onboarding-v2").spec.variants == (("control", 0.5), ("guided", 0.5))
    assert store.experiment("onboarding-v2").status == "running"


def test_locked_fields_of_a_running_experiment_need_force_and_reason(store: Store) -> None:
    spec = parse_pilot_spec(SPEC)
    store.apply_pilot(spec)
    exp = spec.experiments[0]
    changed = dataclasses.replace(
        spec, experiments=(dataclasses.replace(exp, variants=(("control", 0.4), ("guided", 0.6))),)
    )
    with pytest.raises(LockedChangeError, match="weights"):
        store.apply_pilot(changed)
    with pytest.raises(StoreError, match="reason"):
        store.apply_pilot(changed, force=True)
    result = store.apply_pilot(changed, force=True, reason="board asked for more guided traffic", actor="ana")
    forced = [c for c in result.changes if c.forced]
    assert [c.field for c in forced] == ["weights"]
    history = store.plan_history("bike-share", "onboarding-v2")
    assert history[-1].reason == "board asked for more guided traffic" and history[-1].actor == "ana"


def test_plan_history_and_decisions_are_append_only_in_the_database(store: Store) -> None:
    store.apply_pilot(parse_pilot_spec(SPEC))
    with store.session() as s:
        snap = m.ResultsSnapshot(
            pilot_key="bike-share",
            experiment_key="onboarding-v2",
            taken_at=datetime.now(UTC),
            content={"x": 1},
            digest="0" * 64,
        )
        s.add(snap)
        s.flush()
        s.add(
            m.Decision(
                pilot_key="bike-share",
                experiment_key="onboarding-v2",
                snapshot_id=snap.id,
                outcome="go",
                recommendation="go",
                rationale="r",
                members=["a"],
                recorded_by="b",
                at=datetime.now(UTC),
            )
        )
    for table in ("decisions", "plan_changes"):
        with pytest.raises(DBAPIError, match="append-only"), store.session() as s:
            s.execute(text(f"UPDATE {table} SET id = id"))
        with pytest.raises(DBAPIError, match="append-only"), store.session() as s:
            s.execute(text(f"DELETE FROM {table}"))


def test_experiment_status_moves_along_its_lifecycle_only(store: Store) -> None:
    store.apply_pilot(parse_pilot_spec(SPEC), start=False)
    assert store.experiment("onboarding-v2").status == "draft"
    with pytest.raises(StoreError, match="cannot follow 'draft'"):
        store.set_status("onboarding-v2", "stopped", actor="x")
    store.set_status("onboarding-v2", "running", actor="x")
    stopped = store.set_status("onboarding-v2", "stopped", actor="x")
    assert stopped.stopped_at is not None
    store.set_status("onboarding-v2", "decided", actor="x")
    with pytest.raises(StoreError, match="no such experiment"):
        store.set_status("nope", "running", actor="x")


def test_api_keys_are_stored_hashed_and_can_be_revoked(store: Store) -> None:
    key = store.apply_pilot(parse_pilot_spec(SPEC)).api_key
    assert key is not None
    assert store.pilot_for_api_key(key) == "bike-share"
    with store.session() as s:
        stored = [r.key_hash for r in s.query(m.ApiKey)]
    assert key not in stored and all(len(h) == 64 for h in stored)
    second = store.create_api_key("bike-share", "app v2")
    info = store.api_keys("bike-share")
    assert [k.label for k in info] == ["created with the pilot", "app v2"]
    store.revoke_api_key(info[0].id)
    assert store.pilot_for_api_key(key) is None
    assert store.pilot_for_api_key(second) == "bike-share"
    assert store.pilot_for_api_key("rhz_forged") is None


def test_per_partition_rows_are_upserted_and_summed(store: Store) -> None:
    now = datetime.now(UTC)

    def row(partition: int, n: int, total: float) -> dict[str, object]:
        return {
            "experiment_key": "e",
            "metric": "m",
            "variant": "a",
            "segment": "",
            "partition": partition,
            "n": n,
            "sum": total,
            "sum_squares": total * 2,
            "x_sum": 0.0,
            "x_sum_squares": 0.0,
            "sum_products": 0.0,
            "updated_at": now,
        }

    store.write_rows({m.Aggregate: [row(0, 3, 1.5), row(1, 4, 2.0)]})
    store.write_rows({m.Aggregate: [row(1, 10, 5.0)]})  # partition 1 rewritten, not added
    stat = store.experiment_statistics("e")["m"]["a"]
    assert (stat.n, stat.sum, stat.sum_squares) == (13, 6.5, 13.0)
    wait_until(lambda: store.last_update("e") is not None, 5)


def test_erasure_deletes_the_participants_texts_and_is_recorded(store: Store) -> None:
    now = datetime.now(UTC)
    store.write_rows(
        {
            m.FeedbackText: [
                {
                    "event_id": "e1",
                    "pilot_key": "p",
                    "participant_id": "p-1",
                    "kind": "comment",
                    "text": "hi",
                    "occurred_at": now,
                    "variants": {},
                },
                {
                    "event_id": "e2",
                    "pilot_key": "p",
                    "participant_id": "p-2",
                    "kind": "idea",
                    "text": "yo",
                    "occurred_at": now,
                    "variants": {},
                },
            ]
        }
    )
    assert store.erase_participant("p-1", requested_by="dpo") == 1
    with store.session() as s:
        assert [r.participant_id for r in s.query(m.FeedbackText)] == ["p-2"]
    assert [(e.participant_id, e.rows_deleted) for e in store.erasures()] == [("p-1", 1)]
