"""SQL tables of the store (SQLAlchemy 2 declarative mapping). Migrations: `experiments/migrations`.

Aggregates are written per Kafka partition by the worker that owns the partition (upserts keyed
by partition), and summed across partitions when read: the sufficient statistics are mergeable.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

KEY = 64
TZ = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON, datetime: TZ}


class Pilot(Base):
    __tablename__ = "pilots"

    key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    stage: Mapped[str] = mapped_column(String(16))
    consent: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(200), default="")
    #: The pilot part of the spec (everything but the experiments), as `specs.spec_to_dict` writes it.
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    next_decision: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Experiment(Base):
    __tablename__ = "experiments"

    key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    pilot_key: Mapped[str] = mapped_column(ForeignKey("pilots.key", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    stopped_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Variant(Base):
    """The experiment's variants in declaration (bucketing) order; a projection of its spec."""

    __tablename__ = "variants"

    experiment_key: Mapped[str] = mapped_column(ForeignKey("experiments.key", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    weight: Mapped[float] = mapped_column(Float)


class Metric(Base):
    """The experiment's metrics and their role; a projection of its spec."""

    __tablename__ = "metrics"

    experiment_key: Mapped[str] = mapped_column(ForeignKey("experiments.key", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(KEY))
    role: Mapped[str] = mapped_column(String(16))
    window_days: Mapped[float] = mapped_column(Float)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pilot_key: Mapped[str] = mapped_column(ForeignKey("pilots.key", ondelete="CASCADE"), index=True)
    #: The first characters of the key, to recognise it in lists; the key itself is never stored.
    prefix: Mapped[str] = mapped_column(String(16))
    #: SHA-256 of the key: keys are 256-bit random tokens, so a fast hash is safe and indexable.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Aggregate(Base):
    """Per-partition sufficient statistics of one (experiment, metric, variant, segment).

    `n`, `sum`, `sum_squares` describe the metric value per participant; `x_sum`, `x_sum_squares`
    and `sum_products` describe a second per-participant quantity x: the CUPED pre-period value of
    a mean metric, or the denominator of a ratio metric. The metric `$units` counts exposed
    participants in `n`. `segment` is "" for everyone, else "<property>:<value>".
    """

    __tablename__ = "aggregates"

    experiment_key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    metric: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    variant: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    segment: Mapped[str] = mapped_column(String(160), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
    sum: Mapped[float] = mapped_column(Float, default=0.0)
    sum_squares: Mapped[float] = mapped_column(Float, default=0.0)
    x_sum: Mapped[float] = mapped_column(Float, default=0.0)
    x_sum_squares: Mapped[float] = mapped_column(Float, default=0.0)
    sum_products: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime]


class ExposureDay(Base):
    """Per-partition sufficient statistics of the participants first exposed to an experiment on one day
    (event time, UTC), segment "" only: the experiment's history by the days its participants came, so
    that a backlog processed in an hour shows as the days it covers. Their sum over days is the
    `Aggregate` of everyone; the sum up to a day, the statistics of the participants exposed by then."""

    __tablename__ = "exposure_days"

    experiment_key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    metric: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    variant: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
    sum: Mapped[float] = mapped_column(Float, default=0.0)
    sum_squares: Mapped[float] = mapped_column(Float, default=0.0)
    x_sum: Mapped[float] = mapped_column(Float, default=0.0)
    x_sum_squares: Mapped[float] = mapped_column(Float, default=0.0)
    sum_products: Mapped[float] = mapped_column(Float, default=0.0)


class DailyAdoption(Base):
    """Per-partition participants of a pilot on one day (event time, UTC), by segment."""

    __tablename__ = "daily_adoption"

    pilot_key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    segment: Mapped[str] = mapped_column(String(160), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    active: Mapped[int] = mapped_column(Integer, default=0)
    new: Mapped[int] = mapped_column(Integer, default=0)
    activated: Mapped[int] = mapped_column(Integer, default=0)


class RetentionCohort(Base):
    """Per-partition participants of the cohort that first used the pilot in `cohort_week` (a
    Monday) who were active `week_index` weeks later."""

    __tablename__ = "retention_cohorts"

    pilot_key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    cohort_week: Mapped[date] = mapped_column(Date, primary_key=True)
    week_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    segment: Mapped[str] = mapped_column(String(160), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    participants: Mapped[int] = mapped_column(Integer, default=0)


class FeedbackStat(Base):
    """Per-partition feedback counts and sums of a pilot, by experiment and variant ("" = all).

    kind rating: bucket "1".."5"; nps: bucket promoter | passive | detractor; sus: bucket "score"
    with n, sum and sum_squares of the SUS scores; comment and idea: bucket "count"."""

    __tablename__ = "feedback_stats"

    pilot_key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    experiment_key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    variant: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    #: For votes, the idea's event_id.
    bucket: Mapped[str] = mapped_column(String(40), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)
    sum: Mapped[float] = mapped_column(Float, default=0.0)
    sum_squares: Mapped[float] = mapped_column(Float, default=0.0)


class FeedbackText(Base):
    """A citizen's comment, idea or report (of an idea or a comment), kept as text for the console and
    the portal. Written by the workers only: the lab's judgement of a text lives in `Moderation`."""

    __tablename__ = "feedback_texts"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    pilot_key: Mapped[str] = mapped_column(String(KEY), index=True)
    participant_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime]
    variants: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: An idea's title, theme and district (the portal's form); None for texts sent without them.
    title: Mapped[str | None] = mapped_column(String(200), nullable=True, default=None)
    theme: Mapped[str | None] = mapped_column(String(KEY), nullable=True, default=None)
    district: Mapped[str | None] = mapped_column(String(KEY), nullable=True, default=None)
    #: The idea a comment is about, or the idea or comment a report is about (an event id).
    target: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True, default=None)


class PlanChange(Base):
    """An append-only record of every change to a pilot's or an experiment's analysis plan."""

    __tablename__ = "plan_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pilot_key: Mapped[str] = mapped_column(String(KEY), index=True)
    experiment_key: Mapped[str | None] = mapped_column(String(KEY), nullable=True)
    field: Mapped[str] = mapped_column(String(200))
    old: Mapped[Any] = mapped_column(JSON, nullable=True)
    new: Mapped[Any] = mapped_column(JSON, nullable=True)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]


class ResultsSnapshot(Base):
    """The exact results a board saw: aggregates, analysis, recommendation and scorecard."""

    __tablename__ = "results_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pilot_key: Mapped[str] = mapped_column(String(KEY), index=True)
    experiment_key: Mapped[str | None] = mapped_column(String(KEY), nullable=True)
    taken_at: Mapped[datetime]
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: SHA-256 of the canonical JSON of `content`.
    digest: Mapped[str] = mapped_column(String(64))


class Decision(Base):
    """A board decision, recorded against the snapshot it saw. Append-only (database triggers)."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pilot_key: Mapped[str] = mapped_column(String(KEY), index=True)
    experiment_key: Mapped[str | None] = mapped_column(String(KEY), nullable=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("results_snapshots.id"))
    outcome: Mapped[str] = mapped_column(String(16))
    recommendation: Mapped[str] = mapped_column(String(16))
    rationale: Mapped[str] = mapped_column(Text)
    members: Mapped[list[Any]] = mapped_column(JSON)
    conditions: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]


class User(Base):
    """A console account; the password is stored as an Argon2id hash."""

    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The generation of the account's console sessions: signing out, or a new password, moves it on,
    #: and every session cookie of an earlier generation is refused from then on.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The language the account reads the console in ("fr", "en"); None until it chooses.
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)


class SignInThrottle(Base):
    """Failed console sign-ins in a row of one subject: an account name tried (whether or not the
    account exists) or a client address. The wait they impose is derived from `failures` and
    `last_failure_at` (`experiments.accounts.ThrottleRule`); a row older than the rule's memory counts
    as none."""

    __tablename__ = "sign_in_throttle"

    #: "account" or "address".
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    first_failure_at: Mapped[datetime]
    last_failure_at: Mapped[datetime] = mapped_column(index=True)


class Erasure(Base):
    """That a participant's data was erased, and when (the id is already pseudonymous)."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    participant_id: Mapped[str] = mapped_column(String(128), index=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]
    rows_deleted: Mapped[int] = mapped_column(Integer, default=0)


IDEA_STATUSES = ("new", "under_review", "adopted", "not_retained", "done")


class Moderation(Base):
    """The lab's judgement of a citizen's text (an idea or a comment), written from the console.

    `hidden` texts are not shown on the portal; `public_reason` says why, to everyone. An idea's
    `status` (new | under_review | adopted | not_retained | done) is public, with `status_reason` (why it
    was not retained, or what was done) and `adopted_pilot` (the pilot it became). `merged_into` names the
    idea a duplicate was merged into: its votes count for that idea, each voter once.
    """

    __tablename__ = "moderation"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    pilot_key: Mapped[str] = mapped_column(String(KEY), index=True)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    public_reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="new")
    status_reason: Mapped[str] = mapped_column(Text, default="")
    adopted_pilot: Mapped[str | None] = mapped_column(String(KEY), nullable=True, default=None)
    merged_into: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True, default=None)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]


class DecisionSummary(Base):
    """A board decision's summary published to the portal, in French and English ("you said, we did")."""

    __tablename__ = "decision_summaries"

    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), primary_key=True)
    pilot_key: Mapped[str] = mapped_column(String(KEY), index=True)
    summary_fr: Mapped[str] = mapped_column(Text)
    summary_en: Mapped[str] = mapped_column(Text)
    published_by: Mapped[str] = mapped_column(String(200))
    published_at: Mapped[datetime]
