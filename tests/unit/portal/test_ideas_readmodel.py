"""The ideas board on SQLite and PostgreSQL: search, filters, sorts, moderation applied, merged
duplicates, a participant's contributions and the lab's queue (reported items first)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from experiments import models as m
from experiments import moderation
from experiments.readmodels import ideas
from experiments.specs import parse_pilot_spec
from experiments.store import Store

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _id(i: int) -> str:
    return str(uuid.UUID(int=i))


def _text(i: int, kind: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": _id(i),
        "pilot_key": extra.pop("pilot", "town"),
        "participant_id": extra.pop("who", f"p{i}"),
        "kind": kind,
        "text": text,
        "occurred_at": NOW + timedelta(minutes=i),
        "variants": {},
        "title": None,
        "theme": None,
        "district": None,
        "target": None,
        **extra,
    }


def _vote(idea: int, voters: int, net: int, partition: int = 0) -> dict[str, Any]:
    return {
        "pilot_key": "town",
        "experiment_key": "",
        "variant": "",
        "kind": "vote",
        "bucket": _id(idea),
        "partition": partition,
        "n": voters,
        "sum": float(net),
        "sum_squares": float(voters),
    }


def _seed(store: Store) -> None:
    for key in ("town", "city"):
        store.apply_pilot(parse_pilot_spec(f"pilot: {{key: {key}, name: {key}}}\n"))
    texts = [
        _text(1, "idea", "Monthly pass for students", title="Student pass", theme="mobility", district="north"),
        _text(2, "idea", "A monthly pass, for students please", title="Pass", theme="mobility", district="south"),
        _text(3, "idea", "Benches in the park", title="Benches", theme="green", district="north"),
        _text(4, "idea", "<script>alert(1)</script> **bold** 100%_off", title="Odd", theme="green"),
        _text(5, "idea", "Hidden one", title="Spam"),
        _text(6, "idea", "Other pilot's idea", pilot="city", title="Elsewhere"),
        _text(7, "comment", "Yes please", target=_id(1)),
        _text(8, "comment", "Rude words", target=_id(1)),
        _text(9, "report", "insulting", target=_id(8), who="r1"),
        _text(10, "report", "", target=_id(8), who="r2"),
        _text(11, "report", "again", target=_id(8), who="r2"),
        _text(12, "report", "spam", target=_id(5), who="r1"),
    ]
    store.write_rows(
        {m.FeedbackText: texts, m.FeedbackStat: [_vote(1, 5, 3), _vote(1, 2, 2, 1), _vote(2, 3, 1), _vote(3, 4, 4)]}
    )
    moderation.hide(store, _id(5), "Advertising, not an idea.", actor="ana")
    moderation.hide(store, _id(8), "Insults are not accepted.", actor="ana")


def test_the_board_lists_visible_ideas_by_votes_or_date_with_filters_and_search(store: Store) -> None:
    _seed(store)
    board = ideas.ideas_board(store, pilot="town")
    assert [c.title for c in board.ideas] == ["Student pass", "Benches", "Pass", "Odd"]
    student = board.ideas[0]
    assert (student.votes, student.voters, student.supporters, student.comments) == (5, 7, 6, 1)
    assert [c.title for c in ideas.ideas_board(store, pilot="town", sort="recent").ideas] == [
        "Odd", "Benches", "Pass", "Student pass",
    ]  # fmt: skip
    assert [c.title for c in ideas.ideas_board(store, district="north").ideas] == ["Student pass", "Benches"]
    assert [c.title for c in ideas.ideas_board(store, theme="green").ideas] == ["Benches", "Odd"]
    assert [c.title for c in ideas.ideas_board(store, search="STUDENT").ideas] == ["Student pass", "Pass"]
    # LIKE wildcards in a search are searched for as they are.
    assert [c.title for c in ideas.ideas_board(store, search="100%_").ideas] == ["Odd"]
    assert [c.title for c in ideas.ideas_board(store, search="%").ideas] == ["Odd"]
    assert ideas.ideas_board(store).total == 5
    page = ideas.ideas_board(store, pilot="town", page=2, page_size=3)
    assert ([c.title for c in page.ideas], page.total, page.pages) == (["Odd"], 4, 2)
    assert ideas.idea_facets(store, "town") == ideas.Facets(("north", "south"), ("green", "mobility"))


def test_a_merged_duplicate_leaves_the_board_and_is_listed_under_its_idea(store: Store) -> None:
    _seed(store)
    moderation.merge(store, _id(2), _id(1), actor="ana")
    assert [c.title for c in ideas.ideas_board(store, pilot="town").ideas] == ["Student pass", "Benches", "Odd"]
    detail = ideas.idea_detail(store, _id(1))
    assert detail is not None
    assert [d.title for d in detail.duplicates] == ["Pass"]
    assert [(c.text, c.hidden, c.public_reason) for c in detail.comments] == [
        ("Yes please", False, ""),
        ("Rude words", True, "Insults are not accepted."),
    ]
    duplicate = ideas.idea_detail(store, _id(2))
    assert duplicate is not None and duplicate.idea.merged_into == _id(1)
    assert ideas.idea_detail(store, _id(99)) is None


def test_the_labs_queue_puts_reported_items_first_with_their_reasons(store: Store) -> None:
    _seed(store)
    queue = ideas.moderation_queue(store, "town")
    assert [(q.event_id, q.reports) for q in queue[:2]] == [(_id(8), 2), (_id(5), 1)]
    assert queue[0].report_reasons == ("insulting", "again")
    assert queue[0].hidden and queue[0].public_reason == "Insults are not accepted."
    assert {q.kind for q in queue} == {"idea", "comment"}
    assert all(q.reports == 0 for q in queue[2:])


def test_a_participant_sees_every_text_they_wrote_with_the_labs_judgement(store: Store) -> None:
    _seed(store)
    mine = ideas.contributions_of(store, "r2")
    assert [(c.kind, c.text) for c in mine] == [("report", "again"), ("report", "")]
    [hidden] = ideas.contributions_of(store, "p5")
    assert (hidden.hidden, hidden.public_reason) == (True, "Advertising, not an idea.")
    moderation.set_status(store, _id(1), "adopted", adopted_pilot="city", actor="ana")
    card = ideas.idea_cards(store, [_id(1)])[_id(1)]
    assert (card.status, card.adopted_pilot) == ("adopted", "city")
    assert [c.event_id for c in ideas.adopted_ideas(store, "city")] == [_id(1)]
    assert ideas.adopted_ideas(store, "town") == ()
