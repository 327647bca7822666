"""The HTTP ingest and assignment service: `POST /v1/events`, `GET /v1/assign`, `GET /v1/experiments`,
`GET /healthz`, `GET /metrics` (the API is described in docs/events.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from kafka.errors import KafkaError
from pydantic import BaseModel

from experiments.privacy import safe_participant_id
from experiments.registry import NAME_MAX_LENGTH
from experiments.settings import Settings, load_settings
from experiments.specs import spec_to_dict
from experiments.store import Store
from services.assignment.service import RegistryCache, UnknownExperiment
from services.ingest.metrics import CountRequests, IngestMetrics
from services.ingest.publisher import Publisher, PublishError, Record
from streams.events import (
    PARTICIPANT_ID_MAX,
    AnyEvent,
    EventError,
    NotJson,
    Topics,
    decode_batch,
    encode_event,
    ensure_settings_topics,
    envelope_refusal,
    event_schema,
    format_time,
    is_reachable,
    new_event,
    parse_event,
    time_refusal,
)

MAX_BODY = 1_000_000
log = logging.getLogger("rhizome.ingest")
HEALTH_TTL = 2.0
#: The body of `POST /v1/events` as the OpenAPI document describes it, and the event schemas it
#: refers to: generated from the contract's structs.
EVENTS_BODY, EVENT_SCHEMAS = event_schema()


class Accepted(BaseModel):
    accepted: int


class ErrorItem(BaseModel):
    index: int
    field: str
    message: str


class Errors(BaseModel):
    errors: list[ErrorItem]


class Problem(BaseModel):
    error: str


class AssignmentOut(BaseModel):
    experiment: str
    variant: str | None
    #: Whether the exposure was logged (only for a running experiment and an assigned variant).
    logged: bool


class Health(BaseModel):
    kafka: str
    database: str


def _errors(status: int, errors: list[EventError]) -> JSONResponse:
    return JSONResponse({"errors": [e.as_dict() for e in errors]}, status_code=status)


def _problem(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class ApiProblem(Exception):
    """A request refused with `{"error": message}`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class Ingest:
    """What the endpoints share: settings, store, registry cache and Kafka publisher."""

    def __init__(self, settings: Settings, store: Store, publisher: Publisher) -> None:
        self.settings = settings.ensure_secret()
        self.store = store
        self.publisher = publisher
        self.registry = RegistryCache(store)
        self.topics = Topics(settings.namespace)
        self.metrics = IngestMetrics(self.registry)
        self._health: tuple[float, bool] = (-1e9, False)

    def secret(self) -> str:
        assert self.settings.secret is not None
        return self.settings.secret

    def kafka_ok(self) -> bool:
        checked, ok = self._health
        if time.monotonic() - checked > HEALTH_TTL:
            ok = is_reachable(self.settings.kafka_bootstrap, timeout=2.0)
            self._health = (time.monotonic(), ok)
        return ok

    def stamped(self, events: list[AnyEvent]) -> tuple[list[AnyEvent], list[EventError]]:
        """Returns the events as they are published, with a pseudonymous participant id and
        `received_at` (now), and an error for each one dated out of the contract's bounds."""
        now = datetime.now(UTC)
        out: list[AnyEvent] = []
        errors: list[EventError] = []
        for i, event in enumerate(events):
            pid = safe_participant_id(event.participant_id, self.secret())
            stamped = msgspec.structs.replace(event, participant_id=pid, received_at=now)
            refused = time_refusal(stamped, now, self.settings.event_max_age)
            if refused is not None:
                errors.append(EventError(i, *refused))
            out.append(stamped)
        return out, errors

    def records(self, events: list[AnyEvent]) -> list[Record]:
        """Returns the Kafka records of stamped events, keyed by participant."""
        return [Record(self.topics.for_type(e.type), e.participant_id.encode(), encode_event(e)) for e in events]

    def publish(self, records: list[Record]) -> None:
        """Returns once Kafka acknowledged every record (timed); raises PublishError otherwise."""
        started = time.perf_counter()
        try:
            self.publisher.publish(records)
        except PublishError:
            self.metrics.kafka_unavailable.inc()
            raise
        finally:
            self.metrics.publish_seconds.observe(time.perf_counter() - started)


def pilot_of(request: Request) -> str:
    """Returns the pilot of the request's bearer API key; refuses the request with 401 otherwise."""
    ingest: Ingest = request.app.state.ingest
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    challenge = {"WWW-Authenticate": "Bearer"}
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem(401, "missing API key: send Authorization: Bearer <pilot API key>", challenge)
    pilot = ingest.registry.pilot_for_key(token.strip())
    if pilot is None:
        raise ApiProblem(401, "invalid or revoked API key", challenge)
    return pilot


Pilot = Annotated[str, Depends(pilot_of)]


def create_app(
    settings: Settings | None = None, store: Store | None = None, publisher: Publisher | None = None
) -> FastAPI:
    """Returns the ingest app; by default wired to the settings' database and Kafka."""
    settings = settings or load_settings()
    store = store or Store(settings.database_url)
    publisher = publisher or Publisher(settings.kafka_bootstrap)
    ingest = Ingest(settings, store, publisher)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            await run_in_threadpool(ensure_settings_topics, settings, 10.0)
        except (KafkaError, OSError) as exc:
            log.warning("could not check the Kafka topics (%s); events get 503 until Kafka answers", exc)
        yield
        await run_in_threadpool(publisher.close)

    app = FastAPI(
        title="Rhizome ingest and assignment",
        version="1",
        description="Pilot services report usage and feedback events and ask which variant a citizen sees.",
        lifespan=lifespan,
    )
    app.state.ingest = ingest
    app.add_middleware(CountRequests, metrics=ingest.metrics)
    generated_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """The OpenAPI document FastAPI generates, with the event contract's schemas."""
        if app.openapi_schema is None:
            schemas = generated_openapi().setdefault("components", {}).setdefault("schemas", {})
            assert not set(schemas) & set(EVENT_SCHEMAS), "an API model has an event schema's name"
            schemas.update(EVENT_SCHEMAS)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(ApiProblem)
    async def _on_problem(_request: Request, exc: ApiProblem) -> JSONResponse:
        return _problem(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _on_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [EventError(0, ".".join(str(p) for p in err["loc"]), str(err["msg"])) for err in exc.errors()]
        return _errors(422, errors)

    @app.post(
        "/v1/events",
        status_code=202,
        response_model=Accepted,
        responses={
            400: {"model": Errors, "description": "The body is not JSON."},
            401: {"model": Problem, "description": "No valid API key."},
            403: {"model": Errors, "description": "An event belongs to another pilot."},
            413: {"model": Problem, "description": "The body is over 1 MB."},
            422: {"model": Errors, "description": "An event breaks the contract; nothing was published."},
            503: {"model": Problem, "description": "Kafka did not take the events; nothing is accepted."},
        },
        summary="Report one event or an array of up to 1,000 (all or nothing).",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": EVENTS_BODY}}}},
    )
    async def post_events(request: Request, pilot: Pilot) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            return _problem(413, f"body of {length} bytes, must be at most {MAX_BODY}")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_BODY:
                return _problem(413, f"body over {MAX_BODY} bytes")
        try:
            events, errors = decode_batch(bytes(body))
        except NotJson as exc:
            return _errors(400, exc.errors)
        refused = ingest.metrics.events_refused
        if errors:
            refused.labels("invalid").inc(len(events) + len({e.index for e in errors}))
            return _errors(422, errors)
        stamped, errors = ingest.stamped(events)
        if errors:
            refused.labels("invalid").inc(len(events))
            return _errors(422, errors)
        foreign = [
            EventError(i, "pilot_id", f"== {e.pilot_id!r}, but the API key is for pilot {pilot!r}")
            for i, e in enumerate(events)
            if e.pilot_id != pilot
        ]
        if foreign:
            refused.labels("other_pilot").inc(len(events))
            return _errors(403, foreign)
        try:
            await run_in_threadpool(ingest.publish, ingest.records(stamped))
        except PublishError as exc:
            refused.labels("kafka_unavailable").inc(len(events))
            return _problem(503, f"{exc}; nothing was accepted, retry later (re-sending is harmless)")
        for event in events:
            ingest.metrics.events_accepted.labels(event.type).inc()
        return JSONResponse({"accepted": len(events)}, status_code=202)

    @app.get(
        "/v1/assign",
        response_model=AssignmentOut,
        responses={
            401: {"model": Problem},
            403: {"model": Problem},
            404: {"model": Problem},
            422: {"model": Errors, "description": "A parameter is missing or breaks the event contract."},
            503: {"model": Problem},
        },
        summary="The variant a participant sees; the exposure is logged.",
    )
    async def get_assign(
        pilot: Pilot,
        experiment: Annotated[str, Query(min_length=1, max_length=NAME_MAX_LENGTH)],
        participant: Annotated[str, Query(min_length=1, max_length=PARTICIPANT_ID_MAX)],
    ) -> Response:
        refused = envelope_refusal("participant_id", participant)
        if refused is not None:
            return _errors(422, [EventError(0, "query.participant", refused)])
        pid = safe_participant_id(participant, ingest.secret())
        try:
            assignment = await run_in_threadpool(ingest.registry.assign, experiment, pid)
        except UnknownExperiment:
            return _problem(404, f"experiment == {experiment!r}, no such experiment")
        if assignment.pilot != pilot:
            return _problem(403, f"experiment {experiment!r} belongs to another pilot than the API key's")
        logged = False
        if assignment.logs_exposure:
            event = new_event(
                "exposure",
                pilot,
                pid,
                {"experiment": experiment, "variant": assignment.variant},
                source="rhizome-assign",
            )
            stamped, _ = ingest.stamped([parse_event(event)])
            try:
                await run_in_threadpool(ingest.publish, ingest.records(stamped))
            except PublishError as exc:
                return _problem(503, f"{exc}; the exposure could not be logged, retry later")
            logged = True
        return JSONResponse({"experiment": experiment, "variant": assignment.variant, "logged": logged})

    @app.get(
        "/v1/experiments",
        responses={401: {"model": Problem}},
        summary="The pilot's spec and experiment statuses, for SDKs that assign locally.",
    )
    async def get_experiments(pilot: Pilot) -> Response:
        spec = await run_in_threadpool(ingest.registry.pilot, pilot)
        statuses = await run_in_threadpool(ingest.registry.statuses, pilot)
        doc: dict[str, Any] = spec_to_dict(spec) if spec else {}
        return JSONResponse(
            {"pilot": doc, "statuses": statuses, "as_of": format_time(datetime.now(UTC))},
            headers={"Cache-Control": "max-age=5"},
        )

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    async def healthz() -> Response:
        kafka = await run_in_threadpool(ingest.kafka_ok)
        try:
            db = await run_in_threadpool(ingest.store.ping)
        except Exception:
            db = False
        body = {"kafka": "ok" if kafka else "unreachable", "database": "ok" if db else "unreachable"}
        return JSONResponse(body, status_code=200 if kafka and db else 503)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
        summary="Prometheus metrics: requests, events accepted and refused, Kafka's acknowledgements.",
    )
    async def metrics() -> Response:
        text, content_type = ingest.metrics.exposition()
        return Response(text, media_type=content_type)

    return app


def run_ingest(settings: Settings | None = None) -> None:
    """Serves the ingest API with uvicorn until Ctrl-C."""
    import uvicorn

    settings = settings or load_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.ingest_host,
        port=settings.ingest_port,
        log_level="warning",
        access_log=False,
    )
