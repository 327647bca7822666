"""The HTTP ingest and assignment service: `POST /v1/events`, `GET /v1/assign`, `GET /v1/experiments`,
`GET /healthz` (contract: shared/specs/interfaces.md, "HTTP: the ingest service")."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from kafka.errors import KafkaError
from pydantic import BaseModel

from experiments.privacy import safe_participant_id
from experiments.settings import Settings, load_settings
from experiments.specs import spec_to_dict
from experiments.store import Store
from services.assignment.service import RegistryCache, UnknownExperiment
from services.ingest.publisher import Publisher, PublishError, Record
from streams.events import (
    MAX_BATCH,
    AnyEvent,
    EventError,
    Topics,
    ensure_settings_topics,
    format_time,
    is_reachable,
    new_event,
    parse_batch,
)

MAX_BODY = 1_000_000
log = logging.getLogger("rhizome.ingest")
HEALTH_TTL = 2.0


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

    def records(self, events: list[AnyEvent], bodies: list[dict[str, Any]]) -> list[Record]:
        """Returns the Kafka records of validated events: each as it was sent (validation rejected any
        unknown field), with a pseudonymous participant id and `received_at` stamped."""
        received = format_time(datetime.now(UTC))
        out = []
        for event, body in zip(events, bodies, strict=True):
            pid = safe_participant_id(event.participant_id, self.secret())
            stamped = {**body, "participant_id": pid, "received_at": received}
            out.append(Record(self.topics.for_type(event.type), pid.encode(), orjson.dumps(stamped)))
        return out


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
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": ["object", "array"], "maxItems": MAX_BATCH}}},
            }
        },
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
            raw = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _errors(400, [EventError(0, "(body)", f"is not valid JSON: {exc}")])
        events, errors = parse_batch(raw)
        if errors:
            return _errors(422, errors)
        foreign = [
            EventError(i, "pilot_id", f"== {e.pilot_id!r}, but the API key is for pilot {pilot!r}")
            for i, e in enumerate(events)
            if e.pilot_id != pilot
        ]
        if foreign:
            return _errors(403, foreign)
        try:
            await run_in_threadpool(
                ingest.publisher.publish, ingest.records(events, raw if isinstance(raw, list) else [raw])
            )
        except PublishError as exc:
            return _problem(503, f"{exc}; nothing was accepted, retry later (re-sending is harmless)")
        return JSONResponse({"accepted": len(events)}, status_code=202)

    @app.get(
        "/v1/assign",
        response_model=AssignmentOut,
        responses={
            401: {"model": Problem},
            403: {"model": Problem},
            404: {"model": Problem},
            503: {"model": Problem},
        },
        summary="The variant a participant sees; the exposure is logged.",
    )
    async def get_assign(
        pilot: Pilot,
        experiment: Annotated[str, Query(min_length=1, max_length=64)],
        participant: Annotated[str, Query(min_length=1, max_length=128)],
    ) -> Response:
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
            events, _ = parse_batch(event)
            try:
                await run_in_threadpool(ingest.publisher.publish, ingest.records(events, [event]))
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
