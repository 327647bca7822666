"""The lab's answers to citizens, written from the console: moderation of ideas and comments (hidden
with a public reason), ideas' public statuses, duplicates merged, and board decisions' summaries
published to the portal.

Citizens' contributions themselves are events, counted by the workers; these are the lab's own writes.
A merge changes how votes are counted: the workers load the merge map (`Store.idea_merges`) with the registry
and count each participant's latest vote once per canonical idea (experiments/attribution.py).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from experiments import models as m
from experiments.attribution import canonical_idea
from experiments.store import Store, StoreError, now

IdeaStatus = Literal["new", "under_review", "adopted", "not_retained", "done"]
IDEA_STATUSES: tuple[IdeaStatus, ...] = m.IDEA_STATUSES  # type: ignore[assignment]
#: The longest public reason or summary the lab may write (the portal shows them whole).
PUBLIC_TEXT_MAX = 2000


class ModerationState(NamedTuple):
    """The lab's judgement of one text (defaults for a text never moderated)."""

    hidden: bool = False
    public_reason: str = ""
    status: IdeaStatus = "new"
    status_reason: str = ""
    adopted_pilot: str | None = None
    merged_into: str | None = None


def _public_text(field: str, value: str, *, required: bool = False) -> str:
    text = value.strip()
    if required and not text:
        raise StoreError(f"{field} == '', must say it in words citizens will read")
    if len(text) > PUBLIC_TEXT_MAX:
        raise StoreError(f"{field} has {len(text)} characters, must have at most {PUBLIC_TEXT_MAX}")
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise StoreError(f"{field} holds a control character, must be plain text")
    return text


def _text(store: Store, event_id: str, kinds: tuple[str, ...] = ("idea", "comment")) -> m.FeedbackText:
    with store.session() as s:
        row = s.get(m.FeedbackText, event_id)
        if row is None or row.kind not in kinds:
            raise StoreError(f"event_id == {event_id!r}, no such {' or '.join(kinds)}")
        s.expunge(row)
        return row


def _save(store: Store, text: m.FeedbackText, actor: str, **changes: object) -> ModerationState:
    if not actor.strip():
        raise StoreError("actor == '', must name who moderates")
    with store.session() as s:
        row = s.get(m.Moderation, text.event_id)
        if row is None:
            row = m.Moderation(
                event_id=text.event_id,
                pilot_key=text.pilot_key,
                hidden=False,
                public_reason="",
                status="new",
                status_reason="",
            )
            s.add(row)
        for name, value in changes.items():
            setattr(row, name, value)
        row.updated_by, row.updated_at = actor.strip(), now()
        return _state(row)


def _state(row: m.Moderation | None) -> ModerationState:
    if row is None:
        return ModerationState()
    status: IdeaStatus = next((s for s in IDEA_STATUSES if s == row.status), "new")
    return ModerationState(row.hidden, row.public_reason, status, row.status_reason, row.adopted_pilot, row.merged_into)


def moderation_of(store: Store, event_id: str) -> ModerationState:
    """Returns the lab's judgement of a text (the defaults when it was never moderated)."""
    with store.session() as s:
        return _state(s.get(m.Moderation, event_id))


def hide(store: Store, event_id: str, public_reason: str, *, actor: str) -> ModerationState:
    """Returns the state of an idea or comment hidden from the portal, with the reason citizens read."""
    reason = _public_text("public_reason", public_reason, required=True)
    return _save(store, _text(store, event_id), actor, hidden=True, public_reason=reason)


def show(store: Store, event_id: str, *, actor: str) -> ModerationState:
    """Returns the state of an idea or comment shown again on the portal."""
    return _save(store, _text(store, event_id), actor, hidden=False, public_reason="")


def set_status(
    store: Store,
    event_id: str,
    status: str,
    *,
    actor: str,
    reason: str = "",
    adopted_pilot: str | None = None,
) -> ModerationState:
    """Returns the state of an idea given a public status. `adopted` needs the pilot it became,
    `not_retained` a reason citizens read; `reason` may say what was done (`done`) for the others."""
    if status not in IDEA_STATUSES:
        raise StoreError(f"status == {status!r}, must be one of {', '.join(IDEA_STATUSES)}")
    text = _public_text("reason", reason, required=status == "not_retained")
    pilot: str | None = None
    if status == "adopted":
        with store.session() as s:
            if not adopted_pilot or s.get(m.Pilot, adopted_pilot) is None:
                raise StoreError(f"adopted_pilot == {adopted_pilot!r}, must be the key of a registered pilot")
        pilot = adopted_pilot
    idea = _text(store, event_id, ("idea",))
    return _save(store, idea, actor, status=status, status_reason=text, adopted_pilot=pilot)


def merge(store: Store, duplicate: str, into: str, *, actor: str) -> ModerationState:
    """Returns the state of an idea merged into another of the same pilot: its votes count for that
    idea, each voter once (the workers recount when they reload the registry)."""
    if duplicate == into:
        raise StoreError(f"into == {into!r}, an idea cannot be merged into itself")
    first, second = _text(store, duplicate, ("idea",)), _text(store, into, ("idea",))
    if first.pilot_key != second.pilot_key:
        raise StoreError(f"into == {into!r}, an idea of pilot {second.pilot_key!r}, not of {first.pilot_key!r}")
    merges = store.idea_merges().get(first.pilot_key, {})
    if canonical_idea(merges, into) == duplicate:
        raise StoreError(f"into == {into!r}, was itself merged into {duplicate!r}: merge the other way")
    return _save(store, first, actor, merged_into=into)


def unmerge(store: Store, duplicate: str, *, actor: str) -> ModerationState:
    """Returns the state of an idea separated again from the idea it was merged into."""
    return _save(store, _text(store, duplicate, ("idea",)), actor, merged_into=None)


def publish_summary(store: Store, decision_id: int, summary_fr: str, summary_en: str, *, actor: str) -> None:
    """Publishes (or corrects) a board decision's summary on the portal, in French and English; at least
    one of the two must be written (the portal shows the other language's when one is missing)."""
    fr = _public_text("summary_fr", summary_fr)
    en = _public_text("summary_en", summary_en)
    if not fr and not en:
        raise StoreError("summary_fr == '' and summary_en == '', must summarise the decision for citizens")
    if not actor.strip():
        raise StoreError("actor == '', must name who publishes")
    with store.session() as s:
        decision = s.get(m.Decision, decision_id)
        if decision is None:
            raise StoreError(f"decision == {decision_id}, no such decision")
        row = s.get(m.DecisionSummary, decision_id)
        if row is None:
            row = m.DecisionSummary(decision_id=decision_id, pilot_key=decision.pilot_key)
            s.add(row)
        row.summary_fr, row.summary_en = fr, en
        row.published_by, row.published_at = actor.strip(), now()


def withdraw_summary(store: Store, decision_id: int) -> None:
    """Takes a decision's summary off the portal."""
    with store.session() as s:
        row = s.get(m.DecisionSummary, decision_id)
        if row is not None:
            s.delete(row)
