"""The ingest API fuzzed by schemathesis from its own OpenAPI document, served by uvicorn and publishing
to the real broker (issue 24, 19): no answer is a server error, none takes over 5 s, and every answer
is one the document describes (status, content type, body).

Examples are bounded (`EXAMPLES` per operation and generation mode: about a minute on a 2-core machine
shared with others). Two generated bodies in three are made to carry the API key's pilot and a time of
now in every event, so that valid batches reach Kafka (202) rather than all being refused for their pilot (403) or
their time (422). Not stateful: the API has no resource that one call creates and another reads
(events go to Kafka, not back out), so OpenAPI links would chain nothing.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from experiments.settings import load_settings
from experiments.specs import parse_pilot_spec
from experiments.store import Store
from services.ingest.app import create_app
from services.ingest.publisher import Publisher
from streams.events import Topics, ensure_topics, format_time
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
PILOT = "bike-share"
#: Examples per operation and generation mode (positive and negative).
EXAMPLES = 25
#: No answer may take longer (issue 24, 19).
SLOWEST = 5.0


class Served:
    """The served API, and what the fuzzing got from it: how many answers of each status, the slowest."""

    def __init__(self, url: str, api_key: str) -> None:
        self.url, self.api_key = url, api_key
        self.slowest = 0.0
        self.statuses: dict[int, int] = {}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Served]:
    """Returns the ingest API served by uvicorn on a local port, publishing to the test broker."""
    tmp = tmp_path_factory.mktemp("fuzz")
    namespace = f"f{uuid.uuid4().hex[:10]}"
    settings = replace(
        load_settings({"RHIZOME_STATE_DIR": str(tmp), "RHIZOME_SECRET": "fuzz", "RHIZOME_NAMESPACE": namespace}),
        kafka_bootstrap=kafka_bootstrap,
        local_broker=False,
    )
    store = Store(f"sqlite:///{tmp / 'rhizome.db'}")
    store.migrate()
    api_key = store.apply_pilot(parse_pilot_spec((ROOT / "examples" / "bike-share.yaml").read_text())).api_key
    assert api_key
    ensure_topics(kafka_bootstrap, Topics(namespace), 2)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, store, Publisher(kafka_bootstrap)),
            host="127.0.0.1",
            port=free_port(),
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, interval=0.02, what="uvicorn to serve the ingest app")
    try:
        yield Served(f"http://127.0.0.1:{server.config.port}", api_key)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        store.close()


def openapi_document() -> dict[str, Any]:
    """Returns the ingest API's OpenAPI document, as `GET /openapi.json` serves it (an app on an
    in-memory store, which serves nothing: the document is known before any test runs)."""
    settings = load_settings({"RHIZOME_SECRET": "fuzz"})
    return create_app(settings, Store("sqlite:///:memory:"), Publisher("127.0.0.1:1")).openapi()


schema = schemathesis.openapi.from_dict(openapi_document())


def for_the_pilot(body: Any) -> None:
    """Gives every event of two bodies in three the API key's pilot and a time of now (see the module):
    a whole body, since a batch with one foreign event is refused whole."""
    if hash(repr(body)) % 3 == 0:
        return
    for event in body if isinstance(body, list) else [body]:
        if isinstance(event, dict):
            if "pilot_id" in event:
                event["pilot_id"] = PILOT
            if isinstance(event.get("occurred_at"), str):
                event["occurred_at"] = format_time(datetime.now(UTC))
            event.pop("received_at", None)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_answer_is_a_server_error_or_slower_than_five_seconds(case: Any, served: Served) -> None:
    if case.method == "POST" and case.body is not None:
        for_the_pilot(case.body)
    started = time.perf_counter()
    response = case.call(base_url=served.url, headers={"Authorization": f"Bearer {served.api_key}"}, timeout=30)
    took = time.perf_counter() - started
    served.slowest = max(served.slowest, took)
    served.statuses[response.status_code] = served.statuses.get(response.status_code, 0) + 1
    assert took < SLOWEST, f"{case.method} {case.path} answered {response.status_code} after {took:.1f} s"
    case.validate_response(
        response,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )


def test_the_fuzzing_published_events_and_met_the_contract_s_refusals(served: Served) -> None:
    """Run after the fuzzing above (pytest keeps a module's order): it reached Kafka with valid batches
    and was refused by the contract for the others, so both sides of POST /v1/events were tried."""
    assert served.statuses.get(202, 0) > 0 and served.statuses.get(422, 0) > 0, served.statuses
    assert served.slowest < SLOWEST
