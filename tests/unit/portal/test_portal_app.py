"""The portal's pages and actions: both languages, identity by code, CSRF (403), rate limits (429),
bounded texts refused naming the field, Kafka away (503), plain text everywhere, erasure."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from experiments import models as m
from experiments.privacy import pseudonymise
from experiments.store import Store
from services.portal import identity as ident
from tests.unit.portal.conftest import Recorder, csrf

PAGES = (
    "/",
    "/pilots/bike-share",
    "/pilots/bike-share/timeline",
    "/ideas",
    "/privacy",
    "/me",
    "/restore",
)


def _join(client: TestClient) -> str:
    """Joins the bike-share pilot; returns the recovery code shown once."""
    r = client.post("/pilots/bike-share/join", data={"csrf": csrf(client)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/welcome")
    page = client.get(r.headers["location"]).text
    code = re.search(r'class="code"[^>]*>([\d ]+)<', page)
    assert code, page
    return code.group(1).replace(" ", "")


def _idea(store: Store, text: str, title: str = "A title", event_id: str | None = None) -> str:
    event_id = event_id or str(uuid.uuid4())
    store.write_rows(
        {
            m.FeedbackText: [
                {
                    "event_id": event_id,
                    "pilot_key": "bike-share",
                    "participant_id": "h-someone",
                    "kind": "idea",
                    "text": text,
                    "occurred_at": datetime(2026, 11, 20, tzinfo=UTC),
                    "variants": {},
                    "title": title,
                    "theme": "mobility",
                    "district": "north",
                    "target": None,
                }
            ]
        }
    )
    return event_id


def test_every_page_answers_in_french_by_default_and_in_english_when_asked(client: TestClient) -> None:
    for page in PAGES:
        french = client.get(page)
        assert french.status_code == 200, page
        assert '<html lang="fr">' in french.text
        english = client.get(page, headers={"Accept-Language": "en-GB,en;q=0.9"})
        assert '<html lang="en">' in english.text
    assert "Confidentialité" in client.get("/privacy").text
    # The switch is remembered in a cookie and wins over Accept-Language.
    r = client.get("/language/en", params={"next": "/privacy"}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/privacy")
    assert '<html lang="en">' in client.get("/privacy", headers={"Accept-Language": "fr"}).text
    # Never a redirect to another site.
    assert (
        client.get("/language/fr", params={"next": "//evil.example/"}, follow_redirects=False).headers["location"]
        == "/"
    )


def test_joining_publishes_a_consent_event_and_shows_the_code_once(client: TestClient, recorder: Recorder) -> None:
    code = _join(client)
    assert len(code) == ident.CODE_DIGITS
    [consent] = recorder.events()
    assert consent["type"] == "consent" and consent["payload"] == {"granted": True, "scope": "portal"}
    assert consent["participant_id"] == pseudonymise(code, "unit-test-secret")
    assert consent["pilot_id"] == "bike-share" and consent["received_at"]
    assert 'class="code"' not in client.get("/welcome").text
    client.post("/pilots/bike-share/withdraw", data={"csrf": csrf(client)})
    assert recorder.events()[-1]["payload"] == {"granted": False, "scope": "portal"}


def test_a_form_without_its_token_or_with_another_browsers_is_refused_with_403(
    client: TestClient, recorder: Recorder
) -> None:
    assert client.post("/pilots/bike-share/join", data={}).status_code == 403
    other = TestClient(client.app, base_url="http://127.0.0.1")
    foreign = csrf(other)
    assert client.post("/pilots/bike-share/join", data={"csrf": foreign}).status_code == 403
    assert client.post("/pilots/bike-share/join", data={"csrf": "forged"}).status_code == 403
    assert recorder.events() == []


def test_the_31st_vote_in_a_minute_gets_429(client: TestClient, portal_store: Store, recorder: Recorder) -> None:
    _join(client)
    idea = _idea(portal_store, "Bikes for kids")
    token = csrf(client)
    codes = [
        client.post(f"/ideas/{idea}/vote", data={"csrf": token, "score": "1" if i % 2 else "-1"}).status_code
        for i in range(31)
    ]
    assert codes == [200] * 30 + [429]
    votes = [e for e in recorder.events() if e["type"] == "feedback"]
    assert len(votes) == 30 and {v["payload"]["target"] for v in votes} == {idea}
    assert {v["payload"]["score"] for v in votes} == {1, -1}


def test_texts_are_refused_naming_the_field_when_empty_oversized_or_holding_control_characters(
    client: TestClient, recorder: Recorder
) -> None:
    _join(client)
    token = csrf(client)
    base = {"csrf": token, "pilot": "bike-share", "title": "Title", "text": "Text", "theme": "mobility"}
    cases = {
        "title": ("Bad\x00title", "Titre : contient un caractère de contrôle (U+0000)"),
        "text": ("x" * 4001, "Votre idée : compte 4\u202f001 caractères ; 4\u202f000 au plus sont acceptés."),
    }
    for field, (value, message) in cases.items():
        r = client.post("/ideas", data={**base, field: value})
        assert r.status_code == 422 and message in r.text, r.text
    r = client.post("/ideas", data={**base, "text": "   "})
    assert r.status_code == 422 and "Votre idée : est vide" in r.text
    # What the citizen typed is kept in the form.
    assert "Title" in r.text
    r = client.post("/ideas", data={**base, "theme": "not-a-theme"})
    assert r.status_code == 422 and "Thème" in r.text
    assert [e for e in recorder.events() if e["type"] == "feedback"] == []


def test_script_and_markdown_are_sent_as_written_and_shown_as_plain_text(
    client: TestClient, portal_store: Store, recorder: Recorder
) -> None:
    _join(client)
    hostile = "<script>alert('x')</script> **bold** [link](http://evil.example) <img src=x onerror=alert(1)>"
    r = client.post(
        "/ideas",
        data={"csrf": csrf(client), "pilot": "bike-share", "title": "<b>t</b>", "text": hostile, "theme": "mobility"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    [idea] = [e for e in recorder.events() if e["type"] == "feedback"]
    assert idea["payload"]["text"] == hostile and idea["payload"]["title"] == "<b>t</b>"
    event_id = _idea(portal_store, hostile, "<b>t</b>")
    page = client.get(f"/ideas/{event_id}").text
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>t</b>" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; **bold** [link](http://evil.example)" in page
    board = client.get("/ideas").text
    assert "&lt;b&gt;t&lt;/b&gt;" in board and "<b>t</b>" not in board


def test_when_kafka_does_not_acknowledge_the_citizen_gets_503_and_nothing_is_said_received(
    client: TestClient, recorder: Recorder
) -> None:
    recorder.down = True
    r = client.post("/pilots/bike-share/join", data={"csrf": csrf(client)}, follow_redirects=False)
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert "rien n'a été conservé" in r.text
    assert ident.IDENTITY_COOKIE not in r.cookies


def test_restoring_with_the_code_gives_back_the_same_participant(client: TestClient, recorder: Recorder) -> None:
    code = _join(client)
    other = TestClient(client.app, base_url="http://127.0.0.1")
    typed = " ".join(code[i : i + 6] for i in range(0, 24, 6))
    assert other.post("/restore", data={"csrf": csrf(other, "/restore"), "code": "12345"}).status_code == 422
    r = other.post("/restore", data={"csrf": csrf(other, "/restore"), "code": typed}, follow_redirects=False)
    assert r.status_code == 303
    other.post("/pilots/bike-share/join", data={"csrf": csrf(other)})
    first, second = recorder.events()
    assert first["participant_id"] == second["participant_id"]


def test_a_forged_identity_cookie_is_ignored(client: TestClient) -> None:
    client.cookies.set(ident.IDENTITY_COOKIE, "eyJjIjoiMTIzIn0.forged.sig")
    assert "Cet appareil ne vous connaît pas encore" in client.get("/me").text


def test_erasing_publishes_the_request_deletes_the_texts_and_forgets_the_device(
    client: TestClient, portal_store: Store, recorder: Recorder
) -> None:
    code = _join(client)
    participant = pseudonymise(code, "unit-test-secret")
    event_id = _idea(portal_store, "Mine")
    with portal_store.session() as s:
        s.get(m.FeedbackText, event_id).participant_id = participant  # type: ignore[union-attr]
    assert "Mine" in client.get("/me").text
    r = client.post("/me/erase", data={"csrf": csrf(client, "/me")})
    assert r.status_code == 200
    [erasure] = [rec for rec in recorder.records if rec.topic.endswith(".erasure")]
    assert erasure.key == participant.encode()
    with portal_store.session() as s:
        assert s.get(m.FeedbackText, event_id) is None
    assert [e.participant_id for e in portal_store.erasures()] == [participant]
    assert "Cet appareil ne vous connaît pas encore" in client.get("/me").text


def test_the_questionnaire_sends_sus_nps_and_rating_and_refuses_half_a_sus(
    client: TestClient, recorder: Recorder
) -> None:
    _join(client)
    token = csrf(client)
    half = {"csrf": token, **{f"sus{i}": "3" for i in range(1, 6)}}
    r = client.post("/pilots/bike-share/questionnaire", data=half)
    assert r.status_code == 422 and "les dix affirmations" in r.text
    full = {"csrf": token, **{f"sus{i}": str(1 + i % 5) for i in range(1, 11)}, "nps": "9", "rating": "4"}
    assert client.post("/pilots/bike-share/questionnaire", data=full, follow_redirects=False).status_code == 303
    kinds = {e["payload"]["kind"]: e["payload"] for e in recorder.events() if e["type"] == "feedback"}
    assert kinds["sus"]["answers"] == [1 + i % 5 for i in range(1, 11)]
    assert (kinds["nps"]["score"], kinds["rating"]["score"]) == (9, 4)


def test_actions_on_a_pilot_not_joined_ask_to_join_first(client: TestClient, portal_store: Store) -> None:
    idea = _idea(portal_store, "x")
    r = client.post(f"/ideas/{idea}/vote", data={"csrf": csrf(client), "score": "1"})
    assert r.status_code == 409 and "/pilots/bike-share/join" in r.text
