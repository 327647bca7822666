"""The HTTP ingest contract (docs/events.md) against the real broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from experiments.assignment import variant_for
from experiments.privacy import pseudonymise
from experiments.settings import load_settings
from experiments.specs import parse_pilot_spec
from experiments.store import Store
from services.ingest.app import create_app
from services.ingest.publisher import Publisher
from streams.events import Topics, ensure_topics, new_event
from tests.support.ports import free_port

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
SECRET = "ingest-test-secret"


class Api:
    def __init__(self, client: TestClient, key: str, topics: Topics, bootstrap: str, store: Store) -> None:
        self.client, self.key, self.topics, self.bootstrap, self.store = client, key, topics, bootstrap, store

    def post(self, body: Any, key: str | None = None, **headers: str) -> Any:
        return self.client.post(
            "/v1/events", content=orjson.dumps(body), headers={"Authorization": f"Bearer {key or self.key}", **headers}
        )

    def records(self, *topics: str) -> list[dict[str, Any]]:
        consumer = KafkaConsumer(
            *topics, bootstrap_servers=self.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=2000
        )
        out = [orjson.loads(r.value) | {"_key": r.key.decode()} for r in consumer]
        consumer.close()
        return out


def make_api(tmp_path: Path, bootstrap: str) -> tuple[TestClient, Store, Topics]:
    namespace = f"i{uuid.uuid4().hex[:10]}"
    settings = replace(
        load_settings({"RHIZOME_STATE_DIR": str(tmp_path), "RHIZOME_SECRET": SECRET, "RHIZOME_NAMESPACE": namespace}),
        kafka_bootstrap=bootstrap,
        local_broker=False,
    )
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    store.migrate()
    topics = Topics(namespace)
    ensure_topics(bootstrap, topics, 4)
    return TestClient(create_app(settings, store, Publisher(bootstrap))), store, topics


@pytest.fixture
def api(tmp_path: Path, kafka_bootstrap: str) -> Iterator[Api]:
    client, store, topics = make_api(tmp_path, kafka_bootstrap)
    key = store.apply_pilot(parse_pilot_spec((ROOT / "examples" / "bike-share.yaml").read_text())).api_key
    assert key
    with client:
        yield Api(client, key, topics, kafka_bootstrap, store)


def usage(pid: str = "p-1", **payload: Any) -> dict[str, Any]:
    return new_event("usage", "bike-share", pid, {"action": "ride", "value": 3.0, **payload})


def test_accepted_events_are_on_kafka_keyed_by_participant_with_received_at(api: Api) -> None:
    events = [
        usage("p-1"),
        usage("p-2"),
        new_event("consent", "bike-share", "p-1", {"granted": True, "scope": "usage"}),
    ]
    r = api.post(events)
    assert r.status_code == 202 and r.json() == {"accepted": 3}
    got = api.records(api.topics.usage, api.topics.consent)
    assert sorted(e["event_id"] for e in got) == sorted(e["event_id"] for e in events)
    assert all(e["_key"] == e["participant_id"] and e["received_at"] for e in got)
    assert api.post(events[0]).status_code == 202  # a single object is accepted too


def test_identifying_participant_ids_are_pseudonymised_before_kafka(api: Api) -> None:
    assert api.post([usage("Jane.Doe@example.org"), usage("+33 6 12 34 56 78")]).status_code == 202
    ids = {e["participant_id"] for e in api.records(api.topics.usage)}
    assert ids == {pseudonymise("Jane.Doe@example.org", SECRET), pseudonymise("+33 6 12 34 56 78", SECRET)}
    assert not any("@" in i for i in ids)


def test_a_batch_with_an_invalid_event_is_refused_whole_naming_index_and_field(api: Api) -> None:
    bad = usage("p-3")
    bad["payload"]["value"] = "lots"
    extra = dict(usage("p-4"), colour="red")
    r = api.post([usage("p-2"), bad, extra])
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "payload.value"), (2, "colour")]
    assert "lots" in errors[0]["message"] and "unknown field" in errors[1]["message"]
    assert api.records(api.topics.usage) == []


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        ([], 422, "at least one event"),
        ([usage()] * 1001, 422, "at most 1000"),
    ],
)
def test_bad_bodies(api: Api, body: Any, status: int, fragment: str) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    r = api.client.post("/v1/events", content=content, headers={"Authorization": f"Bearer {api.key}"})
    assert r.status_code == status
    assert fragment in r.json()["errors"][0]["message"]


def test_authentication_and_pilot_ownership(api: Api) -> None:
    assert api.client.post("/v1/events", json=usage()).status_code == 401
    assert api.post(usage(), key="rhz_not-a-key").status_code == 401
    other = new_event("usage", "parking-finder", "p-1", {"action": "park"})
    r = api.post([usage(), other])
    assert r.status_code == 403
    assert r.json()["errors"] == [
        {"index": 1, "field": "pilot_id", "message": "== 'parking-finder', but the API key is for pilot 'bike-share'"}
    ]
    key_id = api.store.api_keys("bike-share")[0].id
    api.store.revoke_api_key(key_id)
    api.client.app.state.ingest.registry.invalidate()  # type: ignore[attr-defined]
    assert api.post(usage()).status_code == 401


def test_body_over_one_megabyte_is_refused(api: Api) -> None:
    big = usage(session_id="s")
    big["payload"]["properties"] = {f"k{i}": "x" * 120 for i in range(16)}
    body = [big] * 600
    assert len(orjson.dumps(body)) > 1_000_000
    assert api.post(body).status_code == 413


def test_resending_the_same_event_is_accepted_again(api: Api) -> None:
    ev = usage("p-9")
    assert api.post(ev).status_code == 202
    assert api.post(ev).status_code == 202


def test_assign_gives_the_rule_s_variant_and_logs_the_exposure(api: Api) -> None:
    pilot = api.store.pilot("bike-share")
    exp = pilot.experiment("onboarding-v2")
    answers = {}
    for i in range(40):
        pid = f"p-{i}"
        r = api.client.get(
            "/v1/assign", params={"experiment": "onboarding-v2", "participant": pid},
            headers={"Authorization": f"Bearer {api.key}"},
        )  # fmt: skip
        assert r.status_code == 200
        assert r.json() == {"experiment": "onboarding-v2", "variant": variant_for(pilot, exp, pid), "logged": True}
        answers[pid] = r.json()["variant"]
    exposures = api.records(api.topics.exposures)
    assert {e["participant_id"]: e["payload"]["variant"] for e in exposures} == answers
    r = api.client.get(
        "/v1/assign", params={"experiment": "nope", "participant": "p"}, headers={"Authorization": f"Bearer {api.key}"}
    )
    assert r.status_code == 404
    r = api.client.get(
        "/v1/assign", params={"experiment": "onboarding-v2"}, headers={"Authorization": f"Bearer {api.key}"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query.participant"


def test_experiments_endpoint_serves_the_registry_for_local_assignment(api: Api) -> None:
    r = api.client.get("/v1/experiments", headers={"Authorization": f"Bearer {api.key}"})
    assert r.status_code == 200
    body = r.json()
    assert body["statuses"] == {"onboarding-v2": "running"}
    assert body["pilot"]["experiments"][0]["variants"] == [["control", 0.5], ["guided", 0.5]]


def test_health_and_openapi(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"kafka": "ok", "database": "ok"}
    paths = api.client.get("/openapi.json").json()["paths"]
    assert {"/v1/events", "/v1/assign", "/v1/experiments", "/healthz", "/metrics"} <= set(paths)
    assert {"202", "401", "403", "413", "422", "503"} <= set(paths["/v1/events"]["post"]["responses"])


def test_openapi_publishes_the_event_contract_as_the_body_of_post_events(api: Api) -> None:
    """Issue 24, 13: the body was described as `object` or `array`; it is the contract's schema, so a
    client (or schemathesis) can build valid events from it and knows every bound."""
    doc = api.client.get("/openapi.json").json()
    body = doc["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    one, many = body["oneOf"]
    assert many == {"type": "array", "items": one, "minItems": 1, "maxItems": 1000}
    refs = [f"#/components/schemas/{t}" for t in ("Exposure", "Usage", "Feedback", "Consent")]
    assert [r["$ref"] for r in one["anyOf"]] == refs
    # The body's schema, with the document's components, as a JSON Schema of its own.
    components = orjson.dumps({"body": body, "schemas": doc["components"]["schemas"]})
    resolved = orjson.loads(components.replace(b"#/components/schemas/", b"#/$defs/"))
    validator = jsonschema.Draft202012Validator({**resolved["body"], "$defs": resolved["schemas"]})
    idea = new_event("feedback", "bike-share", "p-1", {"kind": "idea", "text": "Maps", "title": "A map"})
    validator.validate([usage(), idea])
    for bad in (usage(value=1e200), usage(session_id="s\x00"), {**usage(), "occurred_at": 1700000000}, []):
        assert not validator.is_valid(bad), bad


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"payload": {"kind": "comment", "text": "nul \x00 byte"}}, "payload.text", "(got 'nul \\x00 byte')"),
        ({"payload": {"kind": "vote", "target": "x" * 41}}, "payload.target", "must be a UUID"),
        ({"payload": {"kind": "sus", "answers": [3] * 11}}, "payload.answers", "at most 10 items"),
        ({"payload": {"kind": "rating", "score": 4, "theme": "bikes"}}, "payload.theme", "only an idea"),
        ({"type": "usage", "payload": {"action": "ride", "value": 1e200}}, "payload.value", "(got 1e+200)"),
        ({"occurred_at": 1700000000}, "occurred_at", "RFC 3339 time with an offset (e.g. 2026-11-20T09:15:02Z) (got"),
        ({"occurred_at": "0004-01-01T00:00:00Z"}, "occurred_at", "must be at most 400 days before the time it"),
        ({"occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at", "must be at most 10 minutes after the time it"),
    ],
)
def test_an_event_out_of_the_contract_s_bounds_is_refused_with_422_naming_field_and_value(
    api: Api, change: dict[str, Any], field: str, fragment: str
) -> None:
    bad = {**new_event("feedback", "bike-share", "p-5", {"kind": "rating", "score": 4}), **change}
    r = api.post([usage("p-4"), bad])
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert (error["index"], error["field"]) == (1, field) and fragment in error["message"], error
    assert api.records(api.topics.usage, api.topics.feedback) == []


def test_a_participant_out_of_the_contract_is_refused_by_assign(api: Api) -> None:
    r = api.client.get(
        "/v1/assign",
        params={"experiment": "onboarding-v2", "participant": "p\x00"},
        headers={"Authorization": f"Bearer {api.key}"},
    )
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert error["field"] == "query.participant" and error["message"].startswith("must be one line of text")


def test_the_api_key_cache_is_bounded_and_keeps_nothing_for_a_malformed_key(api: Api) -> None:
    """Issue 24, 5: every failed key was kept forever (10,000 wrong 12 KB keys: 115 -> 255 MB)."""
    registry = api.client.app.state.ingest.registry  # type: ignore[attr-defined]
    registry.keys_cached_limit = 20
    for i in range(50):
        malformed = f"rhz_{i}" + "x" * 12_000
        assert api.post(usage(), key=malformed).status_code == 401
    assert registry.keys_cached == 0
    for i in range(50):
        well_formed = "rhz_" + f"{i:043d}"
        assert api.post(usage(), key=well_formed).status_code == 401
    assert registry.keys_cached == 20
    assert api.post(usage()).status_code == 202  # the right key still works, and is kept
    assert registry.keys_cached == 20


def test_metrics_count_requests_events_and_kafka_acknowledgements(api: Api) -> None:
    assert api.post([usage("p-1"), usage("p-2")]).status_code == 202
    assert api.post([usage("p-3"), usage(value="lots")]).status_code == 422
    assert api.post(usage(), key="rhz_wrong").status_code == 401
    assert api.client.get("/nowhere/42").status_code == 404
    r = api.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }

    def sample(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert sample("rhizome_ingest_requests_total", route="/v1/events", method="POST", status="202") == 1
    assert sample("rhizome_ingest_requests_total", route="/v1/events", method="POST", status="422") == 1
    assert sample("rhizome_ingest_requests_total", route="/v1/events", method="POST", status="401") == 1
    assert sample("rhizome_ingest_requests_total", route="(unmatched)", method="GET", status="404") == 1
    assert sample("rhizome_ingest_events_accepted_total", type="usage") == 2
    assert sample("rhizome_ingest_events_refused_total", reason="invalid") == 2
    assert sample("rhizome_ingest_publish_seconds_count") == 1
    assert sample("rhizome_ingest_kafka_unavailable_total") == 0


def test_kafka_unreachable_means_503_and_nothing_accepted(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    namespace = f"i{uuid.uuid4().hex[:10]}"
    settings = replace(
        load_settings({"RHIZOME_STATE_DIR": str(tmp_path), "RHIZOME_SECRET": SECRET, "RHIZOME_NAMESPACE": namespace}),
        kafka_bootstrap=dead,
        local_broker=False,
    )
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    store.migrate()
    key = store.apply_pilot(parse_pilot_spec((ROOT / "examples" / "bike-share.yaml").read_text())).api_key
    with TestClient(create_app(settings, store, Publisher(dead))) as client:
        r = client.post("/v1/events", json=[usage()], headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 503
        assert "nothing was accepted" in r.json()["error"]
        assert client.get("/healthz").status_code == 503
        metrics = client.get("/metrics").text
        assert "rhizome_ingest_kafka_unavailable_total 1.0" in metrics
        assert 'rhizome_ingest_events_refused_total{reason="kafka_unavailable"} 1.0' in metrics
