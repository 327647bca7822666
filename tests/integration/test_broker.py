"""The local broker manager formats storage for any cluster id Kafka can generate."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from experiments.settings import load_settings
from services.broker import LocalBroker, new_cluster_id
from tests.support.ports import free_ports


def test_cluster_id_is_urlsafe_base64_of_sixteen_bytes() -> None:
    assert new_cluster_id(b"\x00" * 16) == "AAAAAAAAAAAAAAAAAAAAAA"
    assert new_cluster_id(b"\xf8" + b"\x00" * 15).startswith("-")
    assert len(new_cluster_id()) == 22


def test_a_cluster_id_starting_with_a_dash_is_formatted(tmp_path: Path) -> None:
    # One random id in 64 begins with "-": the storage tool must not read it as an option.
    settings = replace(load_settings({"RHIZOME_STATE_DIR": str(tmp_path)}), kafka_port=free_ports(2))
    broker = LocalBroker(settings)
    cluster_id = new_cluster_id(b"\xf8" + bytes(range(15)))
    broker._write_config()
    broker._format_once(cluster_id)
    meta = (broker.data_dir / "meta.properties").read_text()
    assert f"cluster.id={cluster_id}" in meta.splitlines()
