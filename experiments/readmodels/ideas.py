"""Citizens' ideas as the portal and the lab read them: the ideas board (search, filters by pilot,
district and theme, sorted by votes or date), one idea with its comments, a participant's own
contributions, and the lab's moderation queue (reported items first).

Votes are the workers' figures (`feedback_stats`, kind vote, bucket = the idea's event id): each
participant's latest vote on an idea, counted once per canonical idea when the lab merged duplicates, so
an idea's voters are distinct participants. Texts are the workers' (`feedback_texts`); the lab's
judgement (`moderation`) is applied here: for citizens, hidden texts are not listed (their page says
why), merged duplicates are listed under the idea they were merged into.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from sqlalchemy import and_, false, func, or_, select

from experiments import models as m
from experiments.readmodels.catalog import as_utc
from experiments.store import Store

IdeaSort = Literal["votes", "recent"]
IDEA_SORTS: tuple[IdeaSort, ...] = ("votes", "recent")
#: Ideas on one page of the board.
PAGE_SIZE = 20
#: The longest search text taken (longer ones are cut: nobody searches with a paragraph).
SEARCH_MAX = 100

_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


class IdeaCard(NamedTuple):
    """One idea with its votes and the lab's judgement. `votes` is the net of +1 and -1 votes, `voters`
    the distinct participants who voted (those of its merged duplicates included); `reports` the
    distinct participants who reported it."""

    event_id: str
    pilot_key: str
    participant_id: str
    title: str | None
    text: str
    theme: str | None
    district: str | None
    occurred_at: datetime
    votes: int
    voters: int
    comments: int
    status: str
    status_reason: str
    adopted_pilot: str | None
    hidden: bool
    public_reason: str
    merged_into: str | None
    reports: int

    @property
    def supporters(self) -> int:
        """Returns the participants whose vote is +1."""
        return (self.voters + self.votes) // 2


class IdeasPage(NamedTuple):
    """One page of the board and how many ideas match in all."""

    ideas: tuple[IdeaCard, ...]
    total: int
    page: int
    pages: int


class CitizenComment(NamedTuple):
    """A comment (on an idea, or on a pilot when `target` is None), with the lab's judgement."""

    event_id: str
    pilot_key: str
    participant_id: str
    text: str
    occurred_at: datetime
    target: str | None
    hidden: bool
    public_reason: str
    reports: int


class IdeaDetail(NamedTuple):
    """An idea's page: the idea, its visible comments and the duplicates merged into it."""

    idea: IdeaCard
    comments: tuple[CitizenComment, ...]
    duplicates: tuple[IdeaCard, ...]


class Contribution(NamedTuple):
    """One text a participant wrote (idea, comment or report), with the lab's judgement of it."""

    event_id: str
    pilot_key: str
    kind: str
    title: str | None
    text: str
    occurred_at: datetime
    target: str | None
    hidden: bool
    public_reason: str
    status: str


class Facets(NamedTuple):
    """The districts and themes the board can be filtered by (those of the listed ideas)."""

    districts: tuple[str, ...]
    themes: tuple[str, ...]


class ModerationItem(NamedTuple):
    """A text in the lab's moderation queue, with the reasons it was reported."""

    event_id: str
    pilot_key: str
    kind: str
    title: str | None
    text: str
    occurred_at: datetime
    target: str | None
    reports: int
    report_reasons: tuple[str, ...]
    hidden: bool
    public_reason: str
    status: str
    status_reason: str
    adopted_pilot: str | None
    merged_into: str | None
    votes: int
    voters: int


def _votes(pilot: str | None = None, ideas: Sequence[str] | None = None) -> Any:
    """Returns the votes per idea (net and voters summed over partitions), of a pilot or some ideas only when
    given (the filter pushed into the sum, which otherwise reads every vote)."""
    f = m.FeedbackStat
    q = (
        select(
            f.pilot_key.label("pilot_key"),
            f.bucket.label("idea"),
            func.sum(f.sum).label("net"),
            func.sum(f.n).label("voters"),
        )
        .where(f.kind == "vote")
        .group_by(f.pilot_key, f.bucket)
    )
    if pilot is not None:
        q = q.where(f.pilot_key == pilot)
    if ideas is not None:
        q = q.where(f.bucket.in_(list(ideas)))
    return q.subquery()


def _reports(targets: Sequence[str] | None = None) -> Any:
    t = m.FeedbackText
    q = (
        select(t.target.label("target"), func.count(func.distinct(t.participant_id)).label("reports"))
        .where(t.kind == "report", t.target.is_not(None))
        .group_by(t.target)
    )
    if targets is not None:
        q = q.where(t.target.in_(list(targets)))
    return q.subquery()


def _comment_counts(targets: Sequence[str] | None = None) -> Any:
    t, d = m.FeedbackText, m.Moderation
    q = (
        select(t.target.label("target"), func.count().label("comments"))
        .outerjoin(d, d.event_id == t.event_id)
        .where(t.kind == "comment", t.target.is_not(None), or_(d.hidden.is_(None), d.hidden == false()))
        .group_by(t.target)
    )
    if targets is not None:
        q = q.where(t.target.in_(list(targets)))
    return q.subquery()


def _cards_query(pilot: str | None = None, ideas: Sequence[str] | None = None) -> tuple[Any, Any, Any]:
    """Returns the select of idea cards (of a pilot, or some ideas, when given), the net-votes column and the
    texts' table (for filters)."""
    t, d = m.FeedbackText, m.Moderation
    v, r, c = _votes(pilot, ideas), _reports(ideas), _comment_counts(ideas)
    net = func.coalesce(v.c.net, 0)
    q = (
        select(
            t.event_id,
            t.pilot_key,
            t.participant_id,
            t.title,
            t.text,
            t.theme,
            t.district,
            t.occurred_at,
            net,
            func.coalesce(v.c.voters, 0),
            func.coalesce(c.c.comments, 0),
            func.coalesce(d.status, "new"),
            func.coalesce(d.status_reason, ""),
            d.adopted_pilot,
            func.coalesce(d.hidden, False),
            func.coalesce(d.public_reason, ""),
            d.merged_into,
            func.coalesce(r.c.reports, 0),
        )
        .outerjoin(v, and_(v.c.idea == t.event_id, v.c.pilot_key == t.pilot_key))
        .outerjoin(d, d.event_id == t.event_id)
        .outerjoin(r, r.c.target == t.event_id)
        .outerjoin(c, c.c.target == t.event_id)
        .where(t.kind == "idea")
    )
    if pilot is not None:
        q = q.where(t.pilot_key == pilot)
    if ideas is not None:
        q = q.where(t.event_id.in_(list(ideas)))
    return q, net, t


def _card(row: Sequence[Any]) -> IdeaCard:
    (event_id, pilot, participant, title, text, theme, district, at, net, voters, comments, *rest) = row
    status, reason, adopted, hidden, public_reason, merged, reports = rest
    return IdeaCard(
        event_id,
        pilot,
        participant,
        title,
        text,
        theme,
        district,
        as_utc(at) or _NEVER,
        round(net or 0),
        int(voters or 0),
        int(comments or 0),
        status,
        reason,
        adopted,
        bool(hidden),
        public_reason,
        merged,
        int(reports or 0),
    )


def _like(text: str) -> str:
    return text.strip()[:SEARCH_MAX].lower()


def ideas_board(
    store: Store,
    *,
    pilot: str | None = None,
    district: str | None = None,
    theme: str | None = None,
    search: str = "",
    sort: IdeaSort = "votes",
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> IdeasPage:
    """Returns a page of the citizens' ideas board: visible ideas (not hidden, not merged into another)
    matching the filters and the search (title or text, any case), the most supported or the newest first."""
    q, net, t = _cards_query(pilot or None)
    d = m.Moderation
    visible = (or_(d.hidden.is_(None), d.hidden == false()), d.merged_into.is_(None))
    filters = [t.kind == "idea", *visible]
    if pilot:
        filters.append(t.pilot_key == pilot)
    if district:
        filters.append(t.district == district)
    if theme:
        filters.append(t.theme == theme)
    words = _like(search)
    if words:
        filters.append(
            or_(
                func.lower(t.text).contains(words, autoescape=True),
                func.lower(func.coalesce(t.title, "")).contains(words, autoescape=True),
            )
        )
    order = (net.desc(), t.occurred_at.desc(), t.event_id) if sort == "votes" else (t.occurred_at.desc(), t.event_id)
    # Counted without the figures: the filters alone decide which ideas match.
    count = select(func.count()).select_from(t).outerjoin(d, d.event_id == t.event_id).where(*filters)
    page = max(1, page)
    with store.engine.connect() as conn:
        total = int(conn.scalar(count) or 0)
        rows = conn.execute(q.where(*filters).order_by(*order).limit(page_size).offset((page - 1) * page_size)).all()
    pages = max(1, -(-total // page_size))
    return IdeasPage(tuple(_card(r) for r in rows), total, page, pages)


def idea_facets(store: Store, pilot: str | None = None) -> Facets:
    """Returns the districts and themes the ideas (of a pilot, or all) carry, sorted."""
    t = m.FeedbackText
    where = [t.kind == "idea"] + ([t.pilot_key == pilot] if pilot else [])
    with store.engine.connect() as conn:
        districts = conn.scalars(select(t.district).where(*where, t.district.is_not(None)).distinct()).all()
        themes = conn.scalars(select(t.theme).where(*where, t.theme.is_not(None)).distinct()).all()
    return Facets(tuple(sorted(str(x) for x in districts)), tuple(sorted(str(x) for x in themes)))


def _comments(store: Store, *conditions: Any) -> tuple[CitizenComment, ...]:
    t, d, r = m.FeedbackText, m.Moderation, _reports()
    q = (
        select(
            t.event_id,
            t.pilot_key,
            t.participant_id,
            t.text,
            t.occurred_at,
            t.target,
            func.coalesce(d.hidden, False),
            func.coalesce(d.public_reason, ""),
            func.coalesce(r.c.reports, 0),
        )
        .outerjoin(d, d.event_id == t.event_id)
        .outerjoin(r, r.c.target == t.event_id)
        .where(t.kind == "comment", *conditions)
        .order_by(t.occurred_at, t.event_id)
    )
    with store.engine.connect() as conn:
        return tuple(
            CitizenComment(e, p, who, text, as_utc(at) or _NEVER, target, bool(h), reason, int(n or 0))
            for e, p, who, text, at, target, h, reason, n in conn.execute(q)
        )


def comments_by_id(store: Store, event_ids: Sequence[str]) -> tuple[CitizenComment, ...]:
    """Returns the comments among these event ids."""
    return _comments(store, m.FeedbackText.event_id.in_(list(event_ids))) if event_ids else ()


def idea_detail(store: Store, event_id: str) -> IdeaDetail | None:
    """Returns an idea with its comments (oldest first) and the duplicates merged into it; None when
    there is no such idea."""
    d = m.Moderation
    with store.engine.connect() as conn:
        dupes = list(conn.scalars(select(d.event_id).where(d.merged_into == event_id)))
        q, _net, t = _cards_query(ideas=[event_id, *dupes])
        rows = {r[0]: r for r in conn.execute(q.order_by(t.occurred_at, t.event_id))}
    if event_id not in rows:
        return None
    return IdeaDetail(
        _card(rows[event_id]),
        _comments(store, m.FeedbackText.target == event_id),
        tuple(_card(r) for key, r in rows.items() if key != event_id),
    )


def adopted_ideas(store: Store, pilot: str) -> tuple[IdeaCard, ...]:
    """Returns the visible ideas the lab adopted into the pilot, or marked done there ("you said, we did")."""
    d = m.Moderation
    q = select(d.event_id).where(
        d.adopted_pilot == pilot, d.status.in_(("adopted", "done")), d.hidden == false(), d.merged_into.is_(None)
    )
    with store.engine.connect() as conn:
        ids = list(conn.scalars(q))
    return tuple(sorted(idea_cards(store, ids).values(), key=lambda c: (c.occurred_at, c.event_id)))


def idea_cards(store: Store, event_ids: Sequence[str]) -> dict[str, IdeaCard]:
    """Returns the ideas among these event ids, by event id."""
    if not event_ids:
        return {}
    q, _net, _t = _cards_query(ideas=event_ids)
    with store.engine.connect() as conn:
        return {r[0]: _card(r) for r in conn.execute(q)}


def contributions_of(store: Store, participant_id: str) -> tuple[Contribution, ...]:
    """Returns every text the participant wrote (ideas, comments, reports), newest first."""
    t, d = m.FeedbackText, m.Moderation
    q = (
        select(
            t.event_id,
            t.pilot_key,
            t.kind,
            t.title,
            t.text,
            t.occurred_at,
            t.target,
            func.coalesce(d.hidden, False),
            func.coalesce(d.public_reason, ""),
            func.coalesce(d.status, "new"),
        )
        .outerjoin(d, d.event_id == t.event_id)
        .where(t.participant_id == participant_id)
        .order_by(t.occurred_at.desc(), t.event_id)
    )
    with store.engine.connect() as conn:
        return tuple(
            Contribution(e, p, kind, title, text, as_utc(at) or _NEVER, target, bool(h), reason, status)
            for e, p, kind, title, text, at, target, h, reason, status in conn.execute(q)
        )


def moderation_queue(store: Store, pilot: str | None = None) -> tuple[ModerationItem, ...]:
    """Returns the ideas and comments (of a pilot, or all) for the lab: the most reported first, then
    the newest; each with the reasons given by the citizens who reported it."""
    t, d, r, v = m.FeedbackText, m.Moderation, _reports(), _votes()
    reports = func.coalesce(r.c.reports, 0)
    q = (
        select(
            t.event_id,
            t.pilot_key,
            t.kind,
            t.title,
            t.text,
            t.occurred_at,
            t.target,
            reports,
            func.coalesce(d.hidden, False),
            func.coalesce(d.public_reason, ""),
            func.coalesce(d.status, "new"),
            func.coalesce(d.status_reason, ""),
            d.adopted_pilot,
            d.merged_into,
            func.coalesce(v.c.net, 0),
            func.coalesce(v.c.voters, 0),
        )
        .outerjoin(d, d.event_id == t.event_id)
        .outerjoin(r, r.c.target == t.event_id)
        .outerjoin(v, and_(v.c.idea == t.event_id, v.c.pilot_key == t.pilot_key))
        .where(t.kind.in_(("idea", "comment")))
        .order_by(reports.desc(), t.occurred_at.desc(), t.event_id)
    )
    if pilot:
        q = q.where(t.pilot_key == pilot)
    report_q = select(t.target, t.text).where(t.kind == "report", t.target.is_not(None)).order_by(t.occurred_at)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
        reasons: dict[str, list[str]] = {}
        for target, text in conn.execute(report_q):
            if target is not None and text.strip():
                reasons.setdefault(target, []).append(text)
    return tuple(
        ModerationItem(
            e,
            p,
            kind,
            title,
            text,
            as_utc(at) or _NEVER,
            target,
            int(n or 0),
            tuple(reasons.get(e, ())),
            bool(hidden),
            public_reason,
            status,
            status_reason,
            adopted,
            merged,
            round(net or 0),
            int(voters or 0),
        )
        for e, p, kind, title, text, at, target, n, hidden, public_reason, status, status_reason, adopted, merged, net, voters in rows  # noqa: E501
    )
