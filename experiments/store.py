"""The SQL store: SQLite by default, PostgreSQL in production, SQLAlchemy 2 and Alembic migrations.

`Store` owns the engine; each method is one transaction. Reads of aggregates sum the per-partition
rows the workers upsert, so any number of workers can write side by side.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

import orjson
from sqlalchemy import Engine, Table, create_engine, delete, event, func, make_url, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from experiments import models as m
from experiments.attribution import ExperimentRuntime, PilotRuntime, canonical_idea, to_ms
from experiments.registry import ExperimentSpec, ExperimentStatus, PilotSpec
from experiments.settings import narrow, private_dir
from experiments.specs import experiment_from_dict, pilot_changes, plan_changes, spec_from_dict, spec_to_dict

MIGRATIONS = Path(__file__).with_name("migrations")
UNITS = "$units"
API_KEY_PREFIX = "rhz_"
ROLES = ("lab", "board", "admin")
#: What writing a row raises when the database refuses its data (a NUL, a value too long for its
#: column, a constraint; a text no encoding holds, an integer no column type does), not when the
#: database is away: such a row is left out and returned by `Store.write_rows`, never tried again.
ROW_REFUSED = (DataError, IntegrityError, UnicodeError, OverflowError)


@dataclass(frozen=True, slots=True)
class RefusedRow:
    """A row the database refused, with its reason (the database's message, without the statement)."""

    table: type[m.Base]
    row: Mapping[str, Any]
    reason: str


class StoreError(ValueError):
    """A request the store refuses; the message names the field and the value."""


class LockedChangeError(StoreError):
    """A change to a running experiment's pre-registered plan, refused unless forced."""

    def __init__(self, experiment: str, fields: Sequence[str]) -> None:
        super().__init__(
            f"experiments.{experiment}: {', '.join(fields)} may not change while the experiment is "
            "running (pre-registered plan); pass --force with a --reason to change it anyway"
        )
        self.experiment = experiment
        self.fields = tuple(fields)


def now() -> datetime:
    return datetime.now(UTC)


def _aware(t: datetime | None) -> datetime | None:
    """Returns the time with UTC attached (SQLite gives back naive datetimes)."""
    if t is None or t.tzinfo is not None:
        return t
    return t.replace(tzinfo=UTC)


def make_engine(url: str) -> Engine:
    """Returns an engine for the URL; SQLite gets WAL mode, a busy timeout and foreign keys, and its
    file (password hashes, citizens' texts) is its owner's alone."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            _private_sqlite_file(Path(database))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _private_sqlite_file(path: Path) -> None:
    """Creates the database file 0600 (in folders created 0700) before SQLite opens it, or narrows it;
    SQLite gives its -wal and -shm files the database's mode, and older ones are narrowed too."""
    if not path.parent.exists():
        private_dir(path.parent)
    # Created only when missing, never opened when it exists: closing any descriptor of the file would
    # release every POSIX lock this process's SQLite connections hold on it, and another process closing
    # its last connection would then checkpoint and delete the WAL these connections still write to.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists():
            narrow(file)


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@dataclass(frozen=True, slots=True)
class ApplyResult:
    pilot: str
    api_key: str | None
    experiments: tuple[str, ...]
    created: bool
    changes: tuple[m.PlanChange, ...]


@dataclass(frozen=True, slots=True)
class StoredExperiment:
    spec: ExperimentSpec
    pilot_key: str
    status: ExperimentStatus
    started_at: datetime | None
    stopped_at: datetime | None


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    id: int
    pilot_key: str
    prefix: str
    label: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Statistic:
    """Sufficient statistics of one (metric, variant), summed over partitions."""

    n: int
    sum: float
    sum_squares: float
    x_sum: float
    x_sum_squares: float
    sum_products: float


class Store:
    """The database behind Rhizome; thread-safe (one session per call)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as s:
            yield s

    # --- schema -------------------------------------------------------------------------------

    def migrate(self, revision: str = "head") -> None:
        """Brings the schema to `revision` with Alembic."""
        from alembic import command

        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Processes starting together on an empty database migrate one after the other.
                conn.execute(text("SELECT pg_advisory_xact_lock(7263540931)"))
            command.upgrade(_alembic_config(conn), revision)

    def downgrade(self, revision: str) -> None:
        from alembic import command

        with self.engine.begin() as conn:
            command.downgrade(_alembic_config(conn), revision)

    def schema_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def ping(self) -> bool:
        """Returns True when the database answers a trivial query."""
        with self.engine.connect() as conn:
            return conn.execute(select(1)).scalar() == 1

    # --- registry -----------------------------------------------------------------------------

    def apply_pilot(
        self,
        spec: PilotSpec,
        *,
        actor: str = "cli",
        reason: str = "",
        force: bool = False,
        start: bool = True,
    ) -> ApplyResult:
        """Returns what applying the spec did: the pilot and its experiments created or updated.

        New experiments start `running` (or `draft` when `start` is False). A change to a running
        experiment's locked fields (variants, weights, salt, primary metric, alpha, ...) raises
        `LockedChangeError` unless `force`; every change is recorded in `plan_changes`.
        """
        t = now()
        pilot_doc = spec_to_dict(spec)
        experiments_doc = pilot_doc.pop("experiments", [])
        with self.session() as s:
            row = s.get(m.Pilot, spec.key)
            created = row is None
            old_spec = self._pilot_spec(s, row) if row is not None else None
            changes: list[m.PlanChange] = []
            for c in pilot_changes(old_spec, spec):
                changes.append(self._change(spec.key, None, c.field, c.old, c.new, False, force, actor, reason, t))
            if row is None:
                row = m.Pilot(key=spec.key, created_at=t)
                s.add(row)
            row.name, row.stage, row.consent, row.owner = str(spec.name), spec.stage, spec.consent, spec.owner
            row.spec, row.next_decision, row.updated_at = pilot_doc, spec.next_decision, t
            # The pilot row exists before its experiments and API key refer to it.
            s.flush()

            for exp, doc in zip(spec.experiments, experiments_doc, strict=True):
                erow = s.get(m.Experiment, exp.key)
                if erow is not None and erow.pilot_key != spec.key:
                    raise StoreError(
                        f"experiments[{exp.key}].key == {exp.key!r}, already used by pilot "
                        f"{erow.pilot_key!r}; "
                        "experiment keys are unique across pilots"
                    )
                old_exp = experiment_from_dict(erow.spec) if erow is not None else None
                diffs = plan_changes(old_exp, exp)
                if erow is not None and erow.status == "running":
                    locked = [c.field for c in diffs if c.locked]
                    if locked and not force:
                        raise LockedChangeError(exp.key, locked)
                    if locked and not reason:
                        raise StoreError(f"experiments.{exp.key}: a forced change needs a reason (--reason)")
                for c in diffs:
                    changes.append(
                        self._change(spec.key, exp.key, c.field, c.old, c.new, c.locked, force, actor, reason, t)
                    )
                if erow is None:
                    erow = m.Experiment(
                        key=exp.key,
                        pilot_key=spec.key,
                        status="running" if start else "draft",
                        created_at=t,
                        started_at=t if start else None,
                    )
                    s.add(erow)
                if diffs or erow.spec is None:
                    erow.spec, erow.updated_at = doc, t
                    self._project(s, exp)
            s.add_all(changes)
            api_key = self._new_api_key(s, spec.key, "created with the pilot") if created else None
        return ApplyResult(spec.key, api_key, tuple(e.key for e in spec.experiments), created, tuple(changes))

    @staticmethod
    def _change(
        pilot: str,
        experiment: str | None,
        field: str,
        old: Any,
        new: Any,
        locked: bool,
        forced: bool,
        actor: str,
        reason: str,
        t: datetime,
    ) -> m.PlanChange:
        return m.PlanChange(
            pilot_key=pilot,
            experiment_key=experiment,
            field=field,
            old=_jsonable(old),
            new=_jsonable(new),
            locked=locked,
            forced=forced and locked,
            actor=actor,
            reason=reason,
            at=t,
        )

    @staticmethod
    def _project(s: Session, exp: ExperimentSpec) -> None:
        s.execute(delete(m.Variant).where(m.Variant.experiment_key == exp.key))
        s.execute(delete(m.Metric).where(m.Metric.experiment_key == exp.key))
        s.flush()
        for i, (name, weight) in enumerate(exp.variants):
            s.add(m.Variant(experiment_key=exp.key, name=name, position=i, weight=weight))
        guardrails = {g.metric for g in exp.guardrails}
        for metric in exp.metrics:
            role = "primary" if metric.key == exp.primary else "guardrail" if metric.key in guardrails else "secondary"
            s.add(
                m.Metric(
                    experiment_key=exp.key,
                    key=metric.key,
                    type=metric.type,
                    action=metric.action,
                    role=role,
                    window_days=metric.window_days,
                )
            )

    def _pilot_spec(self, s: Session, row: m.Pilot) -> PilotSpec:
        exps = s.scalars(
            select(m.Experiment).where(m.Experiment.pilot_key == row.key).order_by(m.Experiment.created_at)
        ).all()
        return spec_from_dict({**row.spec, "experiments": [e.spec for e in exps]})

    def pilot(self, key: str) -> PilotSpec:
        """Returns the pilot's spec with all its experiments; raises StoreError when unknown."""
        with self.session() as s:
            row = s.get(m.Pilot, key)
            if row is None:
                raise StoreError(f"pilot == {key!r}, no such pilot")
            return self._pilot_spec(s, row)

    def pilots(self) -> list[PilotSpec]:
        with self.session() as s:
            rows = s.scalars(select(m.Pilot).order_by(m.Pilot.key)).all()
            return [self._pilot_spec(s, r) for r in rows]

    def experiment(self, key: str) -> StoredExperiment:
        """Returns the experiment, its pilot and status; raises StoreError when unknown."""
        with self.session() as s:
            row = s.get(m.Experiment, key)
            if row is None:
                raise StoreError(f"experiment == {key!r}, no such experiment")
            return _stored(row)

    def experiments(self, pilot: str | None = None) -> list[StoredExperiment]:
        with self.session() as s:
            q = select(m.Experiment).order_by(m.Experiment.pilot_key, m.Experiment.created_at)
            if pilot is not None:
                q = q.where(m.Experiment.pilot_key == pilot)
            return [_stored(r) for r in s.scalars(q)]

    def set_status(self, key: str, status: ExperimentStatus, *, actor: str, reason: str = "") -> StoredExperiment:
        """Returns the experiment after moving it along draft → running → stopped → decided."""
        allowed = {
            "draft": {"running"},
            "running": {"stopped"},
            "stopped": {"running", "decided"},
            "decided": set(),
        }
        t = now()
        with self.session() as s:
            row = s.get(m.Experiment, key)
            if row is None:
                raise StoreError(f"experiment == {key!r}, no such experiment")
            if status not in allowed[row.status]:
                raise StoreError(
                    f"status == {status!r}, cannot follow {row.status!r} "
                    f"(allowed: {', '.join(sorted(allowed[row.status])) or 'none'})"
                )
            s.add(self._change(row.pilot_key, key, "status", row.status, status, False, False, actor, reason, t))
            row.status, row.updated_at = status, t
            if status == "running" and row.started_at is None:
                row.started_at = t
            if status == "stopped":
                row.stopped_at = t
            return _stored(row)

    def pilot_runtimes(self) -> dict[str, PilotRuntime]:
        """Returns every pilot with its experiments' statuses, as the stream processor counts them."""
        with self.session() as s:
            pilots = s.scalars(select(m.Pilot)).all()
            exps = s.scalars(select(m.Experiment)).all()
            by_pilot: dict[str, dict[str, ExperimentRuntime]] = defaultdict(dict)
            for e in exps:
                stopped = _aware(e.stopped_at) if e.status in ("stopped", "decided") else None
                by_pilot[e.pilot_key][e.key] = ExperimentRuntime(
                    experiment_from_dict(e.spec),
                    e.status,  # type: ignore[arg-type]
                    to_ms(stopped) if stopped else None,
                )
            merged = self.idea_merges(s)
            return {
                p.key: PilotRuntime(
                    spec_from_dict({**p.spec, "experiments": []}), by_pilot.get(p.key, {}), merged.get(p.key, {})
                )
                for p in pilots
            }

    def idea_merges(self, session: Session | None = None) -> dict[str, dict[str, str]]:
        """Returns, per pilot, every idea the lab merged into another and the canonical idea its votes
        count for (chains of merges followed)."""
        t = m.Moderation
        q = select(t.pilot_key, t.event_id, t.merged_into).where(t.merged_into.is_not(None))
        direct: dict[str, dict[str, str]] = defaultdict(dict)
        with contextlib.nullcontext(session) if session is not None else self.session() as s:
            for pilot, event_id, into in s.execute(q):
                direct[pilot][event_id] = str(into)
        return {pilot: {idea: canonical_idea(ideas, idea) for idea in ideas} for pilot, ideas in direct.items()}

    def plan_history(self, pilot: str, experiment: str | None = None) -> list[m.PlanChange]:
        with self.session() as s:
            q = select(m.PlanChange).where(m.PlanChange.pilot_key == pilot).order_by(m.PlanChange.id)
            if experiment is not None:
                q = q.where(m.PlanChange.experiment_key == experiment)
            return list(s.scalars(q))

    # --- API keys -----------------------------------------------------------------------------

    @staticmethod
    def _new_api_key(s: Session, pilot: str, label: str) -> str:
        token = API_KEY_PREFIX + secrets.token_urlsafe(32)
        s.add(
            m.ApiKey(
                pilot_key=pilot,
                prefix=token[:12],
                key_hash=hash_api_key(token),
                label=label,
                created_at=now(),
            )
        )
        return token

    def create_api_key(self, pilot: str, label: str = "") -> str:
        """Returns a new API key for the pilot (shown once; only its hash is kept)."""
        with self.session() as s:
            if s.get(m.Pilot, pilot) is None:
                raise StoreError(f"pilot == {pilot!r}, no such pilot")
            return self._new_api_key(s, pilot, label)

    def revoke_api_key(self, key_id: int) -> None:
        with self.session() as s:
            row = s.get(m.ApiKey, key_id)
            if row is None:
                raise StoreError(f"api key id == {key_id}, no such key")
            row.revoked_at = row.revoked_at or now()

    def api_keys(self, pilot: str | None = None) -> list[ApiKeyInfo]:
        with self.session() as s:
            q = select(m.ApiKey).order_by(m.ApiKey.id)
            if pilot is not None:
                q = q.where(m.ApiKey.pilot_key == pilot)
            return [
                ApiKeyInfo(r.id, r.pilot_key, r.prefix, r.label, _aware(r.created_at) or now(), _aware(r.revoked_at))
                for r in s.scalars(q)
            ]

    def pilot_for_api_key(self, token: str) -> str | None:
        """Returns the pilot a valid, unrevoked API key belongs to, else None."""
        with self.session() as s:
            row = s.scalar(select(m.ApiKey).where(m.ApiKey.key_hash == hash_api_key(token)))
            if row is None or row.revoked_at is not None:
                return None
            return row.pilot_key

    # --- aggregates ---------------------------------------------------------------------------

    def write_rows(
        self,
        rows: Mapping[type[m.Base], Sequence[Mapping[str, Any]]],
        *,
        replacing: Collection[int] = (),
        erasing: Sequence[tuple[str, datetime]] = (),
        refused: list[RefusedRow] | None = None,
    ) -> None:
        """Upserts rows of several tables in one transaction. With a `refused` list, the rows the
        database refuses (`ROW_REFUSED`) are left out and added to it while the others are written,
        so one bad row never blocks the rest; without, the first one fails the write. The figures of
        the partitions in `replacing` are replaced: their current rows (statistics, their history by
        day, adoption, retention, feedback) are deleted first. Then the texts of each (participant,
        time) of `erasing` written before that time are deleted."""
        with self.session() as s:
            if replacing:
                partitions = sorted(replacing)
                for cleared in (m.Aggregate, m.ExposureDay, m.DailyAdoption, m.RetentionCohort, m.FeedbackStat):
                    s.execute(delete(cleared).where(cleared.partition.in_(partitions)))
            for table, batch in rows.items():
                if not batch:
                    continue
                if refused is None:
                    self._upsert(s, table, batch)
                else:
                    self._upsert_each_refused_apart(s, table, batch, refused)
            t = m.FeedbackText
            for participant, until in erasing:
                s.execute(delete(t).where(t.participant_id == participant, t.occurred_at < until))

    def _upsert_each_refused_apart(
        self, s: Session, table: type[m.Base], rows: Sequence[Mapping[str, Any]], refused: list[RefusedRow]
    ) -> None:
        """Upserts the rows in a savepoint; when the database refuses one, upserts them again one by
        one, each in a savepoint of its own, and adds those it refuses to `refused`."""
        try:
            with s.begin_nested():
                self._upsert(s, table, rows)
        except ROW_REFUSED:
            for row in rows:
                try:
                    with s.begin_nested():
                        self._upsert(s, table, [row])
                except ROW_REFUSED as exc:
                    # The driver's message alone: the statement's parameters hold citizens' texts.
                    reason = str(exc.orig) if isinstance(exc, DBAPIError) else f"{type(exc).__name__}: {exc}"
                    refused.append(RefusedRow(table, row, reason.strip()))

    def _upsert(self, s: Session, table: type[m.Base], rows: Sequence[Mapping[str, Any]]) -> None:
        t = cast(Table, table.__table__)
        pk = [c.name for c in t.primary_key.columns]
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = insert(t)
        cols = {c: stmt.excluded[c] for c in rows[0] if c not in pk}
        # One statement compiled once, executed for every row (executemany / insertmanyvalues).
        s.execute(
            stmt.on_conflict_do_update(index_elements=pk, set_=cols) if cols else stmt.on_conflict_do_nothing(),
            list(rows),
        )

    def experiment_statistics(self, experiment: str, segment: str = "") -> dict[str, dict[str, Statistic]]:
        """Returns {metric: {variant: Statistic}} summed over partitions (`$units` included)."""
        a = m.Aggregate
        q = (
            select(
                a.metric,
                a.variant,
                func.sum(a.n),
                func.sum(a.sum),
                func.sum(a.sum_squares),
                func.sum(a.x_sum),
                func.sum(a.x_sum_squares),
                func.sum(a.sum_products),
            )
            .where(a.experiment_key == experiment, a.segment == segment)
            .group_by(a.metric, a.variant)
        )
        out: dict[str, dict[str, Statistic]] = defaultdict(dict)
        with self.engine.connect() as conn:
            for metric, variant, *vals in conn.execute(q):
                out[metric][variant] = Statistic(int(vals[0] or 0), *(float(v or 0.0) for v in vals[1:]))
        return dict(out)

    def experiment_segments(self, experiment: str) -> list[str]:
        a = m.Aggregate
        with self.engine.connect() as conn:
            return list(
                conn.scalars(select(a.segment).where(a.experiment_key == experiment).distinct().order_by(a.segment))
            )

    def last_update(self, experiment: str) -> datetime | None:
        with self.engine.connect() as conn:
            t = conn.scalar(select(func.max(m.Aggregate.updated_at)).where(m.Aggregate.experiment_key == experiment))
        return _aware(t)

    # --- participants -------------------------------------------------------------------------

    def erase_participant(self, participant_id: str, *, requested_by: str) -> int:
        """Returns the number of rows deleted for the participant; records the erasure."""
        with self.session() as s:
            deleted = 0
            for table in (m.FeedbackText,):
                result = s.execute(delete(table).where(table.participant_id == participant_id))
                deleted += int(getattr(result, "rowcount", 0) or 0)
            s.add(m.Erasure(participant_id=participant_id, requested_by=requested_by, at=now(), rows_deleted=deleted))
            return deleted

    def erasures(self) -> list[m.Erasure]:
        with self.session() as s:
            return list(s.scalars(select(m.Erasure).order_by(m.Erasure.id)))


def _stored(row: m.Experiment) -> StoredExperiment:
    status: ExperimentStatus = row.status  # type: ignore[assignment]
    return StoredExperiment(
        experiment_from_dict(row.spec),
        row.pilot_key,
        status,
        _aware(row.started_at),
        _aware(row.stopped_at),
    )


def hash_api_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def canonical_json(content: Any) -> bytes:
    return orjson.dumps(content, option=orjson.OPT_SORT_KEYS, default=_default)
