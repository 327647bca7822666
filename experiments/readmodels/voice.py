"""The citizens' voice of a pilot: ratings, NPS, SUS, comments and ideas ranked by votes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import func, select

from experiments import models as m
from experiments.feedback import (
    RATING_SCALE,
    Idea,
    RatingSummary,
    VoiceSummary,
    nps,
    rating_summary,
    themes,
)
from experiments.readmodels.catalog import as_utc
from experiments.store import Store

#: Comments and ideas read for the themes, most recent first.
THEME_TEXTS = 500
RECENT_COMMENTS = 20
TOP_IDEAS = 10


class CitizenText(NamedTuple):
    """A comment or an idea as the console lists it; `votes` is the net of +1 and -1 votes (ideas)."""

    event_id: str
    kind: str
    text: str
    occurred_at: datetime
    votes: int = 0
    voters: int = 0


class UsabilityScores(NamedTuple):
    """SUS scores summed: respondents, mean and standard deviation (None when undefined)."""

    respondents: int
    mean: float | None
    sd: float | None


class VoiceFigures(NamedTuple):
    """The feedback figures of a pilot (or of one experiment's variant), summed over partitions."""

    rating: RatingSummary
    promoters: int
    passives: int
    detractors: int
    sus: UsabilityScores
    comments: int
    ideas: int

    @property
    def nps(self) -> float | None:
        """Returns the Net Promoter Score, None without respondents."""
        total = self.promoters + self.passives + self.detractors
        return None if total == 0 else nps(self.promoters, self.passives, self.detractors)


def figures_of(rows: Iterable[tuple[str, str, int, float, float]]) -> VoiceFigures:
    ratings: dict[int, int] = {}
    buckets: dict[str, int] = defaultdict(int)
    sus = UsabilityScores(0, None, None)
    counts: dict[str, int] = defaultdict(int)
    for kind, bucket, n, total, squares in rows:
        if kind == "rating" and bucket.isdigit() and int(bucket) in RATING_SCALE:
            ratings[int(bucket)] = n
        elif kind == "nps":
            buckets[bucket] += n
        elif kind == "sus" and n > 0:
            mean = total / n
            sd = ((squares - total * total / n) / (n - 1)) ** 0.5 if n > 1 else None
            sus = UsabilityScores(n, mean, sd)
        elif kind in ("comment", "idea"):
            counts[kind] += n
    return VoiceFigures(
        rating_summary(ratings),
        buckets["promoter"],
        buckets["passive"],
        buckets["detractor"],
        sus,
        counts["comment"],
        counts["idea"],
    )


def _feedback_query(pilot: str) -> Any:
    f = m.FeedbackStat
    return (
        select(f.experiment_key, f.variant, f.kind, f.bucket, func.sum(f.n), func.sum(f.sum), func.sum(f.sum_squares))
        .where(f.pilot_key == pilot, f.kind != "vote")
        .group_by(f.experiment_key, f.variant, f.kind, f.bucket)
    )


def voice_figures(store: Store, pilot: str) -> VoiceFigures:
    """Returns the pilot's feedback figures, every participant counted once."""
    f = m.FeedbackStat
    q = _feedback_query(pilot).where(f.experiment_key == "", f.variant == "")
    with store.engine.connect() as conn:
        return figures_of(
            (kind, bucket, int(n or 0), float(s or 0), float(ss or 0))
            for _, _, kind, bucket, n, s, ss in conn.execute(q)
        )


def voice_by_variant(store: Store, pilot: str, experiment: str) -> dict[str, VoiceFigures]:
    """Returns the feedback figures of each variant of an experiment (participants exposed to it)."""
    f = m.FeedbackStat
    q = _feedback_query(pilot).where(f.experiment_key == experiment)
    rows: dict[str, list[tuple[str, str, int, float, float]]] = defaultdict(list)
    with store.engine.connect() as conn:
        for _, variant, kind, bucket, n, s, ss in conn.execute(q):
            rows[variant].append((kind, bucket, int(n or 0), float(s or 0), float(ss or 0)))
    return {variant: figures_of(r) for variant, r in sorted(rows.items())}


def _votes() -> Any:
    f = m.FeedbackStat
    return (
        select(
            f.pilot_key.label("pilot_key"),
            f.bucket.label("event_id"),
            func.sum(f.sum).label("net"),
            func.sum(f.n).label("voters"),
        )
        .where(f.kind == "vote")
        .group_by(f.pilot_key, f.bucket)
        .subquery()
    )


def ranked_ideas(store: Store, pilot: str, limit: int = TOP_IDEAS) -> tuple[CitizenText, ...]:
    """Returns the pilot's ideas with the most net votes first (the most recent first on a tie)."""
    t, v = m.FeedbackText, _votes()
    net = func.coalesce(v.c.net, 0)
    q = (
        select(t.event_id, t.text, t.occurred_at, net, func.coalesce(v.c.voters, 0))
        .outerjoin(v, (v.c.event_id == t.event_id) & (v.c.pilot_key == t.pilot_key))
        .where(t.pilot_key == pilot, t.kind == "idea")
        .order_by(net.desc(), t.occurred_at.desc(), t.event_id)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return tuple(
            CitizenText(event_id, "idea", text, as_utc(at) or datetime.min.replace(tzinfo=UTC), round(net), int(n))
            for event_id, text, at, net, n in conn.execute(q)
        )


def recent_texts(
    store: Store, pilot: str, kinds: Sequence[str] = ("comment",), limit: int = RECENT_COMMENTS
) -> tuple[CitizenText, ...]:
    """Returns the pilot's most recent comments (or other kinds of text), newest first."""
    t = m.FeedbackText
    q = (
        select(t.event_id, t.kind, t.text, t.occurred_at)
        .where(t.pilot_key == pilot, t.kind.in_(list(kinds)))
        .order_by(t.occurred_at.desc(), t.event_id)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return tuple(
            CitizenText(event_id, kind, text, as_utc(at) or datetime.min.replace(tzinfo=UTC))
            for event_id, kind, text, at in conn.execute(q)
        )


def voice_summary(store: Store, pilot: str) -> VoiceSummary:
    """Returns the citizens' voice of the pilot as the scorecard reads it (themes from the most recent
    `THEME_TEXTS` comments and ideas)."""
    figures = voice_figures(store, pilot)
    texts = recent_texts(store, pilot, ("comment", "idea"), THEME_TEXTS)
    ideas = ranked_ideas(store, pilot)
    return VoiceSummary(
        nps=figures.nps,
        nps_respondents=figures.promoters + figures.passives + figures.detractors,
        sus_mean=figures.sus.mean,
        sus_respondents=figures.sus.respondents,
        rating=figures.rating,
        comment_count=figures.comments,
        idea_count=figures.ideas,
        themes=tuple(themes([t.text for t in texts])),
        top_ideas=tuple(Idea(i.text, i.votes) for i in ideas),
    )
