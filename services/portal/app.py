"""The citizens' portal (`rhizome portal`, default 127.0.0.1:8600): FastAPI and Jinja2, pages drawn on the
server that work without JavaScript, in French and English.

Everything a citizen does is an event of the contract (streams/events.py) published to Kafka with
acks=all and counted by the same workers as the pilots' own events: joining a pilot is a consent event,
an idea, a vote, a comment, a questionnaire answer and a report are feedback events. A page says it was
received only once Kafka acknowledged it; otherwise the citizen gets a 503 page and nothing is lost
silently. What the portal reads (pilots, ideas, votes, the timeline) comes from the store the workers
and the lab write.

Abuse: every form carries a CSRF token (403 without), actions are rate-limited per participant and per
address (429), texts are bounded as the contract bounds them and control characters refused, naming the
field; every text is shown as plain text (Jinja2 escapes everything).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import FastAPI, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.exceptions import HTTPException as StarletteHTTPException

from experiments.i18n import LANGUAGES, Language, language_of, negotiate, translations
from experiments.readmodels import catalog
from experiments.readmodels import ideas as idea_reads
from experiments.readmodels.timeline import pilot_timeline
from experiments.registry import STAGES, PilotSpec
from experiments.settings import Settings, load_settings
from experiments.store import Store
from services.erasure import erase_participant
from services.ingest.publisher import Publisher, PublishError, Record
from services.portal import identity as ident
from services.portal.forms import REASON_MAX, THEMES, TITLE_MAX, FieldProblem, FormReader, FormRefused
from services.portal.words import (
    IDEA_STATUS_NAMES,
    N_,
    NOTICES,
    OUTCOME_NAMES,
    STAGE_MEANINGS,
    STAGE_NAMES,
    SUS_SCALE,
    SUS_STATEMENTS,
    Words,
    measured,
)
from streams.events import TEXT_MAX, InvalidEvent, Topics, format_time, new_event, parse_event

log = logging.getLogger("rhizome.portal")
HERE = Path(__file__).resolve().parent
SOURCE = "rhizome-portal"
#: How long the pilots' specs are reused before they are read again.
PILOTS_TTL = 5.0


@dataclass(frozen=True, slots=True)
class Limits:
    """The portal's rate limits (documented in docs/portal.md). Each is a moving window, per process."""

    #: Votes per participant: the 31st vote in a minute gets 429.
    votes: str = "30/minute"
    #: Ideas, comments, reports and questionnaires per participant.
    contributions: str = "10/minute"
    #: Joining and leaving pilots per participant.
    consent: str = "20/minute"
    #: Erasures per participant.
    erasures: str = "5/hour"
    #: Restoring with a code, per address (guessing a code is the threat).
    restores: str = "10/minute"
    #: Every form sent, per address (the participant's limits apply first).
    posts: str = "120/minute"


class TooMany(Exception):
    """A rate limit was reached; `retry_after` seconds until the window frees a place."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class Forbidden(Exception):
    """A form without a valid CSRF token."""


@dataclass
class Visit:
    """One request as the portal answers it: language, identity and the cookies to set."""

    request: Request
    language: Language
    words: Words
    identity: ident.Identity | None
    participant: str | None
    nonce: str
    set_cookies: dict[str, tuple[str, int | None]] = field(default_factory=dict)

    @property
    def csrf(self) -> str:
        return str(self.request.app.state.portal.keys.csrf_token(self.nonce))


class Portal:
    """What the pages share: settings, store, publisher, signing keys, limits and templates."""

    def __init__(self, settings: Settings, store: Store, publisher: Publisher, limits: Limits) -> None:
        self.settings = settings.ensure_secret()
        assert self.settings.secret is not None
        self.store = store
        self.publisher = publisher
        self.keys = ident.Keys(self.settings.secret)
        self.topics = Topics(settings.namespace)
        self.limits = {name: parse(getattr(limits, name)) for name in Limits.__dataclass_fields__}
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self._pilots: tuple[float, dict[str, PilotSpec]] = (-1e9, {})
        self.templates = {language: _environment(language) for language in LANGUAGES}

    def pilots(self) -> dict[str, PilotSpec]:
        """Returns every pilot's spec by key (read again every few seconds)."""
        read_at, specs = self._pilots
        if time.monotonic() - read_at > PILOTS_TTL:
            specs = catalog.pilot_specs(self.store)
            self._pilots = (time.monotonic(), specs)
        return specs

    def hit(self, limit: str, *who: str) -> None:
        """Counts an action against a limit for each of `who`; raises TooMany when one is exhausted."""
        item: RateLimitItem = self.limits[limit]
        for key in who:
            if not self.limiter.hit(item, limit, key):
                reset, _remaining = self.limiter.get_window_stats(item, limit, key)
                raise TooMany(max(1, round(reset - time.time())))

    def publish(self, events: list[dict[str, Any]]) -> None:
        """Publishes events of the contract, validated first; returns once Kafka acknowledged all of
        them. Raises InvalidEvent (naming the field) or PublishError (nothing acknowledged)."""
        received = format_time(datetime.now(UTC))
        records = []
        for raw in events:
            event = parse_event(raw)
            stamped = {**raw, "received_at": received}
            records.append(
                Record(self.topics.for_type(event.type), event.participant_id.encode(), orjson.dumps(stamped))
            )
        self.publisher.publish(records)


def _environment(language: Language) -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(("html",), default_for_string=True, default=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(language, "portal"), newstyle=True)  # type: ignore[attr-defined]
    return env


# --- requests --------------------------------------------------------------------------------------


def _portal(request: Request) -> Portal:
    portal: Portal = request.app.state.portal
    return portal


def _visit(request: Request) -> Visit:
    portal = _portal(request)
    chosen = request.cookies.get(ident.LANGUAGE_COOKIE)
    language = language_of(chosen) if chosen in LANGUAGES else negotiate(request.headers.get("accept-language"))
    identity = portal.keys.identity(request.cookies.get(ident.IDENTITY_COOKIE))
    nonce = request.cookies.get(ident.CSRF_COOKIE) or ""
    visit = Visit(
        request,
        language,
        Words(language),
        identity,
        portal.keys.participant(identity) if identity else None,
        nonce,
    )
    if len(nonce) < 16 or len(nonce) > 64:
        visit.nonce = ident.new_nonce()
        visit.set_cookies[ident.CSRF_COOKIE] = (visit.nonce, None)
    return visit


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _checked(request: Request, visit: Visit, token: str | None) -> None:
    """Refuses a form whose CSRF token is missing or not this browser's, and counts it against the
    address's limit."""
    if not _portal(request).keys.csrf_valid(token, request.cookies.get(ident.CSRF_COOKIE)):
        raise Forbidden
    _portal(request).hit("posts", f"address:{_address(request)}")


def _keep(visit: Visit, response: Response) -> Response:
    secure = visit.request.url.scheme == "https"
    for name, (value, max_age) in visit.set_cookies.items():
        if value:
            response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/")
        else:
            response.delete_cookie(name, path="/", httponly=True, samesite="lax", secure=secure)
    return response


def _page(visit: Visit, template: str, status: int = 200, **context: Any) -> Response:
    portal = _portal(visit.request)
    env = portal.templates[visit.language]
    done = visit.request.query_params.get("done", "")
    html = env.get_template(template).render(
        notice=visit.words(NOTICES[done]) if done in NOTICES else "",
        w=visit.words,
        lang=visit.language,
        other_language="en" if visit.language == "fr" else "fr",
        csrf=visit.csrf,
        identity=visit.identity,
        path=visit.request.url.path,
        here=_here(visit.request),
        stage_names=STAGE_NAMES,
        stages=STAGES,
        status_names=IDEA_STATUS_NAMES,
        outcome_names=OUTCOME_NAMES,
        notices=NOTICES,
        themes=THEMES,
        **context,
    )
    return _keep(visit, HTMLResponse(html, status_code=status))


def _here(request: Request) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    return request.url.path + query


def _safe_next(target: str | None, default: str = "/") -> str:
    """Returns a path of this site to go back to (never another site's address)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target or len(target) > 500:
        return default
    return target


def _redirect(visit: Visit, target: str, **query: str) -> Response:
    url = target + (("&" if "?" in target else "?") + urlencode(query) if query else "")
    return _keep(visit, RedirectResponse(url, status_code=303))


def _remember(visit: Visit, identity: ident.Identity) -> None:
    portal = _portal(visit.request)
    visit.identity = identity
    visit.participant = portal.keys.participant(identity)
    visit.set_cookies[ident.IDENTITY_COOKIE] = (portal.keys.identity_cookie(identity), ident.IDENTITY_MAX_AGE)


def _event(visit: Visit, pilot: str, payload: Mapping[str, Any], kind: str = "feedback") -> dict[str, Any]:
    assert visit.participant is not None
    return new_event(kind, pilot, visit.participant, payload, source=SOURCE)  # type: ignore[arg-type]


def _send(visit: Visit, events: list[dict[str, Any]]) -> None:
    _portal(visit.request).publish(events)


# --- the app ---------------------------------------------------------------------------------------


def create_app(
    settings: Settings | None = None,
    store: Store | None = None,
    publisher: Publisher | None = None,
    limits: Limits | None = None,
) -> FastAPI:
    """Returns the portal app; by default wired to the settings' database and Kafka."""
    settings = settings or load_settings()
    store = store or Store(settings.database_url)
    publisher = publisher or Publisher(settings.kafka_bootstrap, client_id="rhizome-portal")
    portal = Portal(settings, store, publisher, limits or Limits())
    app = FastAPI(title="Rhizome citizens' portal", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.portal = portal

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, _exc: Forbidden) -> Response:
        visit = _visit(request)
        return _page(visit, "problem.html", 403, problem="forbidden")

    @app.exception_handler(TooMany)
    async def _too_many(request: Request, exc: TooMany) -> Response:
        visit = _visit(request)
        response = _page(visit, "problem.html", 429, problem="too_many", retry_after=exc.retry_after)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(PublishError)
    async def _unavailable(request: Request, exc: PublishError) -> Response:
        log.warning("Kafka did not acknowledge a portal event: %s", exc)
        visit = _visit(request)
        response = _page(visit, "problem.html", 503, problem="unavailable")
        response.headers["Retry-After"] = "30"
        return response

    @app.exception_handler(InvalidEvent)
    async def _invalid(request: Request, exc: InvalidEvent) -> Response:
        visit = _visit(request)
        problems = [FieldProblem(e.field, e.message) for e in exc.errors]
        return _page(visit, "problem.html", 422, problem="invalid", problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        visit = _visit(request)
        problem = "not_found" if exc.status_code == 404 else "bad_request"
        return _page(visit, "problem.html", exc.status_code, problem=problem)

    @app.exception_handler(RequestValidationError)
    async def _bad_form(request: Request, _exc: RequestValidationError) -> Response:
        visit = _visit(request)
        return _page(visit, "problem.html", 400, problem="bad_request")

    # --- public pages ------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        visit = _visit(request)
        pilots = list(portal.pilots().values())
        by_stage = {stage: [p for p in pilots if p.stage == stage] for stage in STAGES}
        return _page(visit, "home.html", by_stage=by_stage, stage_meanings=STAGE_MEANINGS)

    def pilot_or_404(key: str) -> PilotSpec:
        spec = portal.pilots().get(key)
        if spec is None:
            raise StarletteHTTPException(404)
        return spec

    @app.get("/pilots/{key}", response_class=HTMLResponse)
    def pilot_page(request: Request, key: str) -> Response:
        visit = _visit(request)
        spec = pilot_or_404(key)
        experiments = [(e, measured(visit.words, e)) for e in spec.experiments]
        top = idea_reads.ideas_board(portal.store, pilot=key, page_size=5)
        joined = visit.identity is not None and key in visit.identity.joined
        return _page(
            visit,
            "pilot.html",
            pilot=spec,
            experiments=experiments,
            rules=visit.words.rules(spec),
            ideas=top,
            joined=joined,
            stage_meanings=STAGE_MEANINGS,
        )

    @app.get("/pilots/{key}/timeline", response_class=HTMLResponse)
    def timeline_page(request: Request, key: str) -> Response:
        visit = _visit(request)
        spec = pilot_or_404(key)
        timeline = pilot_timeline(portal.store, key, public=True)
        names = {e.key: visit.words.experiment_name(e) for e in spec.experiments}
        adopted = idea_reads.adopted_ideas(portal.store, key)
        return _page(
            visit,
            "timeline.html",
            pilot=spec,
            timeline=timeline,
            entries=list(reversed(timeline.entries)),
            experiment_names=names,
            adopted=adopted,
        )

    @app.get("/ideas", response_class=HTMLResponse)
    def ideas_page(
        request: Request,
        pilot: Annotated[str, Query(max_length=64)] = "",
        district: Annotated[str, Query(max_length=64)] = "",
        theme: Annotated[str, Query(max_length=64)] = "",
        q: Annotated[str, Query(max_length=200)] = "",
        sort: Annotated[str, Query(max_length=16)] = "votes",
        page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    ) -> Response:
        visit = _visit(request)
        order: idea_reads.IdeaSort = "recent" if sort == "recent" else "votes"
        board = idea_reads.ideas_board(
            portal.store,
            pilot=pilot or None,
            district=district or None,
            theme=theme or None,
            search=q,
            sort=order,
            page=page,
        )
        facets = idea_reads.idea_facets(portal.store, pilot or None)
        chosen = {"pilot": pilot, "district": district, "theme": theme, "q": q, "sort": order}
        links = {
            "previous": "/ideas?" + urlencode({**chosen, "page": board.page - 1}) if board.page > 1 else "",
            "next": "/ideas?" + urlencode({**chosen, "page": board.page + 1}) if board.page < board.pages else "",
        }
        return _page(
            visit,
            "ideas.html",
            board=board,
            facets=facets,
            chosen=chosen,
            pilots=portal.pilots(),
            links=links,
        )

    @app.get("/ideas/new", response_class=HTMLResponse)
    def new_idea_page(request: Request, pilot: Annotated[str, Query(max_length=64)] = "") -> Response:
        visit = _visit(request)
        spec = pilot_or_404(pilot)
        if visit.identity is None or pilot not in visit.identity.joined:
            return _page(visit, "join_first.html", pilot=spec, next=_here(request))
        return _page(visit, "idea_form.html", pilot=spec, values={}, problems=[])

    @app.get("/ideas/{event_id}", response_class=HTMLResponse)
    def idea_page(request: Request, event_id: str) -> Response:
        visit = _visit(request)
        detail = idea_reads.idea_detail(portal.store, event_id) if len(event_id) <= 36 else None
        if detail is None:
            raise StarletteHTTPException(404)
        spec = portal.pilots().get(detail.idea.pilot_key)
        joined = visit.identity is not None and detail.idea.pilot_key in visit.identity.joined
        merged_into = idea_reads.idea_detail(portal.store, detail.idea.merged_into) if detail.idea.merged_into else None
        return _page(
            visit,
            "idea.html",
            detail=detail,
            idea=detail.idea,
            pilot=spec,
            joined=joined,
            merged_into=merged_into,
            problems=[],
        )

    @app.get("/pilots/{key}/questionnaire", response_class=HTMLResponse)
    def questionnaire_page(request: Request, key: str) -> Response:
        visit = _visit(request)
        spec = pilot_or_404(key)
        if visit.identity is None or key not in visit.identity.joined:
            return _page(visit, "join_first.html", pilot=spec, next=_here(request))
        return _page(
            visit, "questionnaire.html", pilot=spec, statements=SUS_STATEMENTS, scale=SUS_SCALE, values={}, problems=[]
        )

    @app.get("/privacy", response_class=HTMLResponse)
    def privacy_page(request: Request) -> Response:
        return _page(_visit(request), "privacy.html")

    @app.get("/me", response_class=HTMLResponse)
    def my_page(request: Request) -> Response:
        visit = _visit(request)
        mine = idea_reads.contributions_of(portal.store, visit.participant) if visit.participant else ()
        return _page(visit, "me.html", contributions=mine, pilots=portal.pilots())

    @app.get("/welcome", response_class=HTMLResponse)
    def welcome_page(request: Request, next: Annotated[str, Query(max_length=500)] = "/") -> Response:
        visit = _visit(request)
        code = None
        if visit.identity is not None and not visit.identity.shown:
            # Shown once: the next visit of this page no longer shows it.
            code = ident.grouped(visit.identity.code)
            _remember(visit, ident.Identity(visit.identity.code, True, visit.identity.joined))
        return _page(visit, "welcome.html", code=code, next=_safe_next(next))

    @app.get("/restore", response_class=HTMLResponse)
    def restore_page(request: Request) -> Response:
        return _page(_visit(request), "restore.html", problems=[])

    @app.get("/language/{language}")
    def switch_language(request: Request, language: str, next: Annotated[str, Query(max_length=500)] = "/") -> Response:
        visit = _visit(request)
        if language in LANGUAGES:
            visit.set_cookies[ident.LANGUAGE_COOKIE] = (language, ident.IDENTITY_MAX_AGE)
        return _redirect(visit, _safe_next(next))

    @app.get("/static/portal.css")
    def stylesheet() -> Response:
        return FileResponse(
            HERE / "static" / "portal.css", media_type="text/css", headers={"Cache-Control": "max-age=300"}
        )

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            ok = portal.store.ping()
        except Exception:
            ok = False
        return Response(
            orjson.dumps({"database": "ok" if ok else "unreachable"}), 200 if ok else 503, media_type="application/json"
        )

    # --- actions -----------------------------------------------------------------------------------

    @app.post("/pilots/{key}/join")
    def join(
        request: Request,
        key: str,
        csrf: Annotated[str, Form(max_length=500)] = "",
        next: Annotated[str, Form(max_length=500)] = "",
    ) -> Response:
        visit = _visit(request)
        _checked(request, visit, csrf)
        spec = pilot_or_404(key)
        first_time = visit.identity is None
        identity = visit.identity or ident.Identity(ident.new_code())
        _remember(visit, identity)
        portal.hit("consent", f"participant:{visit.participant}")
        _send(visit, [_event(visit, spec.key, {"granted": True, "scope": "portal"}, "consent")])
        _remember(visit, identity.joining(spec.key))
        back = _safe_next(next, f"/pilots/{spec.key}")
        if first_time:
            return _redirect(visit, "/welcome", next=back)
        return _redirect(visit, back, done="joined")

    @app.post("/pilots/{key}/withdraw")
    def withdraw(request: Request, key: str, csrf: Annotated[str, Form(max_length=500)] = "") -> Response:
        visit = _visit(request)
        _checked(request, visit, csrf)
        spec = pilot_or_404(key)
        if visit.identity is None:
            return _redirect(visit, f"/pilots/{spec.key}")
        portal.hit("consent", f"participant:{visit.participant}")
        _send(visit, [_event(visit, spec.key, {"granted": False, "scope": "portal"}, "consent")])
        _remember(visit, visit.identity.leaving(spec.key))
        return _redirect(visit, f"/pilots/{spec.key}", done="withdrawn")

    def joined_or_page(visit: Visit, spec: PilotSpec, back: str) -> Response | None:
        if visit.identity is None or spec.key not in visit.identity.joined:
            return _page(visit, "join_first.html", 409, pilot=spec, next=back)
        portal.hit("contributions", f"participant:{visit.participant}")
        return None

    @app.post("/ideas")
    async def propose(request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        return await _in_thread(_propose, request, form)

    def _propose(request: Request, form: dict[str, str]) -> Response:
        visit = _visit(request)
        _checked(request, visit, form.get("csrf"))
        spec = pilot_or_404(form.get("pilot", ""))
        refused = joined_or_page(visit, spec, f"/ideas/new?pilot={spec.key}")
        if refused is not None:
            return refused
        read = FormReader(form, visit.words)
        title = read.text("title", max_length=TITLE_MAX, multiline=False)
        text = read.text("text", max_length=TEXT_MAX)
        theme = read.choice("theme", THEMES)
        district = read.choice("district", spec.districts, required=False) if spec.districts else None
        try:
            read.check()
        except FormRefused as exc:
            return _page(visit, "idea_form.html", 422, pilot=spec, values=form, problems=exc.problems)
        payload = {"kind": "idea", "text": text, "title": title.strip(), "theme": theme}
        if district:
            payload["district"] = district
        _send(visit, [_event(visit, spec.key, payload)])
        return _redirect(visit, "/me", done="idea")

    @app.post("/ideas/{event_id}/vote")
    def vote(
        request: Request,
        event_id: str,
        csrf: Annotated[str, Form(max_length=500)] = "",
        score: Annotated[str, Form(max_length=4)] = "",
    ) -> Response:
        visit = _visit(request)
        _checked(request, visit, csrf)
        idea = idea_or_404(event_id)
        spec = pilot_or_404(idea.pilot_key)
        if visit.identity is None or spec.key not in visit.identity.joined:
            return _page(visit, "join_first.html", 409, pilot=spec, next=f"/ideas/{event_id}")
        portal.hit("votes", f"participant:{visit.participant}")
        if score not in ("1", "-1"):
            raise StarletteHTTPException(400)
        _send(visit, [_event(visit, spec.key, {"kind": "vote", "target": event_id, "score": int(score)})])
        return _redirect(visit, f"/ideas/{event_id}", done="vote")

    def idea_or_404(event_id: str) -> idea_reads.IdeaCard:
        card = idea_reads.idea_cards(portal.store, [event_id]).get(event_id) if len(event_id) <= 36 else None
        if card is None or card.hidden:
            raise StarletteHTTPException(404)
        return card

    @app.post("/ideas/{event_id}/comments")
    async def comment(request: Request, event_id: str) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        return await _in_thread(_comment, request, event_id, form)

    def _comment(request: Request, event_id: str, form: dict[str, str]) -> Response:
        visit = _visit(request)
        _checked(request, visit, form.get("csrf"))
        idea = idea_or_404(event_id)
        spec = pilot_or_404(idea.pilot_key)
        refused = joined_or_page(visit, spec, f"/ideas/{event_id}")
        if refused is not None:
            return refused
        read = FormReader(form, visit.words)
        text = read.text("comment", max_length=TEXT_MAX)
        try:
            read.check()
        except FormRefused as exc:
            detail = idea_reads.idea_detail(portal.store, event_id)
            return _page(
                visit,
                "idea.html",
                422,
                detail=detail,
                idea=idea,
                pilot=spec,
                joined=True,
                merged_into=None,
                problems=exc.problems,
                values=form,
            )
        _send(visit, [_event(visit, spec.key, {"kind": "comment", "text": text, "target": event_id})])
        return _redirect(visit, f"/ideas/{event_id}", done="comment")

    @app.post("/report/{event_id}")
    async def report(request: Request, event_id: str) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        return await _in_thread(_report, request, event_id, form)

    def _report(request: Request, event_id: str, form: dict[str, str]) -> Response:
        visit = _visit(request)
        _checked(request, visit, form.get("csrf"))
        where = _reported(event_id)
        if where is None:
            raise StarletteHTTPException(404)
        spec = pilot_or_404(where[0])
        back = where[1]
        refused = joined_or_page(visit, spec, back)
        if refused is not None:
            return refused
        read = FormReader(form, visit.words)
        reason = read.text("reason", max_length=REASON_MAX, required=False)
        try:
            read.check()
        except FormRefused as exc:
            return _page(visit, "problem.html", 422, problem="invalid", problems=exc.problems)
        payload: dict[str, Any] = {"kind": "report", "target": event_id}
        if reason.strip():
            payload["text"] = reason
        _send(visit, [_event(visit, spec.key, payload)])
        return _redirect(visit, back, done="report")

    def _reported(event_id: str) -> tuple[str, str] | None:
        """Returns the pilot of the idea or comment reported, and the page to go back to."""
        if len(event_id) > 36:
            return None
        card = idea_reads.idea_cards(portal.store, [event_id]).get(event_id)
        if card is not None:
            return card.pilot_key, f"/ideas/{event_id}"
        for c in idea_reads.comments_by_id(portal.store, [event_id]):
            return c.pilot_key, f"/ideas/{c.target}" if c.target else f"/pilots/{c.pilot_key}"
        return None

    @app.post("/pilots/{key}/questionnaire")
    async def answer(request: Request, key: str) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        return await _in_thread(_answer, request, key, form)

    def _answer(request: Request, key: str, form: dict[str, str]) -> Response:
        visit = _visit(request)
        _checked(request, visit, form.get("csrf"))
        spec = pilot_or_404(key)
        refused = joined_or_page(visit, spec, f"/pilots/{key}/questionnaire")
        if refused is not None:
            return refused
        read = FormReader(form, visit.words)
        answers = [read.number(f"sus{i}", range(1, 6)) for i in range(1, 11)]
        nps = read.number("nps", range(11))
        rating = read.number("rating", range(1, 6))
        given = [a for a in answers if a is not None]
        if given and len(given) < 10:
            read.refuse("sus", N_("answer all ten statements, or none of them."))
        if not given and nps is None and rating is None:
            read.refuse("sus", N_("answer at least one question."))
        try:
            read.check()
        except FormRefused as exc:
            return _page(
                visit,
                "questionnaire.html",
                422,
                pilot=spec,
                statements=SUS_STATEMENTS,
                scale=SUS_SCALE,
                values=form,
                problems=exc.problems,
            )
        events = []
        if len(given) == 10:
            events.append(_event(visit, key, {"kind": "sus", "answers": given}))
        if nps is not None:
            events.append(_event(visit, key, {"kind": "nps", "score": nps}))
        if rating is not None:
            events.append(_event(visit, key, {"kind": "rating", "score": rating}))
        _send(visit, events)
        return _redirect(visit, f"/pilots/{key}", done="answers")

    @app.post("/restore")
    def restore(
        request: Request,
        csrf: Annotated[str, Form(max_length=500)] = "",
        code: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        visit = _visit(request)
        _checked(request, visit, csrf)
        portal.hit("restores", f"address:{_address(request)}")
        typed = ident.read_code(code)
        if typed is None:
            message = visit.words(N_("%(field)s: "), field=visit.words(N_("Recovery code"))) + visit.words(
                N_("must be the 24 digits you were given (spaces do not matter).")
            )
            return _page(visit, "restore.html", 422, problems=[FieldProblem("code", message)])
        _remember(visit, ident.Identity(typed, shown=True))
        return _redirect(visit, "/me", done="restored")

    @app.post("/me/erase")
    def erase(request: Request, csrf: Annotated[str, Form(max_length=500)] = "") -> Response:
        visit = _visit(request)
        _checked(request, visit, csrf)
        if visit.participant is None:
            return _redirect(visit, "/me")
        portal.hit("erasures", f"participant:{visit.participant}")
        erase_participant(portal.store, portal.publisher, portal.topics, visit.participant, requested_by="portal")
        visit.set_cookies[ident.IDENTITY_COOKIE] = ("", None)
        visit.identity, visit.participant = None, None
        return _page(visit, "erased.html")

    @app.post("/me/forget")
    def forget(request: Request, csrf: Annotated[str, Form(max_length=500)] = "") -> Response:
        visit = _visit(request)
        _checked(request, visit, csrf)
        visit.set_cookies[ident.IDENTITY_COOKIE] = ("", None)
        return _redirect(visit, "/", done="forgotten")

    return app


async def _in_thread(fn: Callable[..., Response], *args: Any) -> Response:
    """Returns what `fn` answers, run in the thread pool (it reads the store and waits for Kafka)."""
    return await run_in_threadpool(fn, *args)


def run_portal(settings: Settings | None = None) -> None:
    """Serves the portal with uvicorn until Ctrl-C."""
    import uvicorn

    settings = settings or load_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.portal_host,
        port=settings.portal_port,
        log_level="warning",
        access_log=False,
    )
