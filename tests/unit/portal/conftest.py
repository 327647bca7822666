"""A portal over a migrated SQLite store, publishing to a recorder instead of Kafka (the real broker is
the end-to-end tests' business: tests/e2e/test_portal_browser.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from experiments.settings import load_settings
from experiments.specs import parse_pilot_spec
from experiments.store import Store
from services.ingest.publisher import PublishError, Record
from services.portal.app import create_app

ROOT = Path(__file__).resolve().parents[3]
SPEC = (ROOT / "examples" / "bike-share.yaml").read_text()


class Recorder:
    """Takes the records the portal publishes; `down` makes it refuse them as Kafka would when away."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.down = False

    def publish(self, records: Sequence[Record], timeout: float = 8.0) -> None:
        if self.down:
            raise PublishError("Kafka did not acknowledge the events: broker away")
        self.records.extend(records)

    def close(self) -> None:
        pass

    def events(self) -> list[dict]:
        return [orjson.loads(r.value) for r in self.records if not r.topic.endswith(".erasure")]


@pytest.fixture
def portal_store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'rhizome.db'}")
    store.migrate()
    store.apply_pilot(parse_pilot_spec(SPEC))
    yield store
    store.close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def client(tmp_path: Path, portal_store: Store, recorder: Recorder) -> Iterator[TestClient]:
    settings = load_settings({"RHIZOME_STATE_DIR": str(tmp_path), "RHIZOME_SECRET": "unit-test-secret"})
    app = create_app(settings, portal_store, recorder)  # type: ignore[arg-type]
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def csrf(client: TestClient, page: str = "/pilots/bike-share") -> str:
    """Returns the CSRF token of a page's forms (the browser's CSRF cookie set by that visit)."""
    found = _TOKEN.search(client.get(page).text)
    assert found, f"no form token on {page}"
    return found.group(1)
