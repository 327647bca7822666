"""The ingest API's Prometheus metrics (`GET /metrics`): requests by route and status, events accepted
and refused, the time Kafka takes to acknowledge, and how often it did not."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from services.assignment.service import RegistryCache

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The route label of a request no route matched (any path: not one label per path a client tries).
UNMATCHED = "(unmatched)"
#: Kafka acknowledges a request's events within milliseconds when it is well; the ingest gives up at 8 s.
PUBLISH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 8.0, 10.0)


class IngestMetrics:
    """The metrics of one ingest app, in a registry of its own (several apps may share a process)."""

    def __init__(self, keys: RegistryCache) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rhizome_ingest_requests",
            "HTTP requests answered, by route (its template), method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.events_accepted = Counter(
            "rhizome_ingest_events_accepted",
            "Events Kafka acknowledged (answered 202), by type.",
            ["type"],
            registry=self.registry,
        )
        self.events_refused = Counter(
            "rhizome_ingest_events_refused",
            "Events of refused batches (a batch is all or nothing), by reason: invalid (422), "
            "other_pilot (403), kafka_unavailable (503).",
            ["reason"],
            registry=self.registry,
        )
        self.publish_seconds = Histogram(
            "rhizome_ingest_publish_seconds",
            "Time from handing a request's events to the producer until Kafka acknowledged them all (or not).",
            buckets=PUBLISH_BUCKETS,
            registry=self.registry,
        )
        self.kafka_unavailable = Counter(
            "rhizome_ingest_kafka_unavailable",
            "Publications Kafka did not acknowledge in time (answered 503).",
            registry=self.registry,
        )
        cached = Gauge("rhizome_ingest_api_keys_cached", "API key checks kept in memory.", registry=self.registry)
        cached.set_function(lambda: keys.keys_cached)

    def exposition(self) -> tuple[bytes, str]:
        """Returns the metrics in Prometheus' text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class CountRequests:
    """ASGI middleware counting every HTTP request by the route that answered it and its status."""

    def __init__(self, app: Asgi, metrics: IngestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", UNMATCHED)
            self.metrics.requests.labels(label, scope.get("method", ""), str(status)).inc()
