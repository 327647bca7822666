"""The `rhizome` command line: outputs, exit codes (0, 2 with one line naming the field, 1)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from experiments import models as m
from experiments.assignment import variant_for
from experiments.store import Store
from services.cli import main

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples" / "bike-share.yaml"
REQUEST = {
    "control": "control",
    "variants": {"control": {"units": 1000, "weight": 0.5}, "treatment": {"units": 1010, "weight": 0.5}},
    "metrics": [
        {"name": "converted", "type": "proportion",
         "data": {"control": {"n": 1000, "sum": 100}, "treatment": {"n": 1010, "sum": 130}}},
    ],
}  # fmt: skip


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RHIZOME_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RHIZOME_SECRET", "cli-test-secret")
    monkeypatch.delenv("RHIZOME_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        import sys

        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode()), encoding="utf-8")
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_analyze_reads_a_file_or_stdin(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "req.json"
    path.write_text(json.dumps(REQUEST))
    code, out, err = run(capsys, "analyze", str(path))
    assert code == 0 and err == ""
    row = json.loads(out)["comparisons"][0]
    assert row["metric"] == "converted" and row["variant"] == "treatment" and row["p_value"] is not None
    code2, out2, _ = run(capsys, "analyze", "-", stdin=json.dumps(REQUEST))
    assert code2 == 0 and json.loads(out2) == json.loads(out)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{nope", "request: not valid JSON"),
        (json.dumps({**REQUEST, "alpha": 2}), "alpha"),
        (json.dumps({**REQUEST, "metrics": [{**REQUEST["metrics"][0], "data": {
            "control": {"n": 1000, "sum": 100}, "treatment": {"n": -1, "sum": 0}}}]}), "metrics[0].data.treatment.n"),
        # Issue 24: an integer of 10^400 exited 1 with OverflowError; one of 5,000 digits fails Python's reader.
        (json.dumps(REQUEST).replace('"sum": 130', '"sum": 1' + "0" * 400),
         "metrics[0].data.treatment.sum: must be a finite number (got an integer of 401 digits)"),
        (json.dumps(REQUEST).replace('"units": 1010', '"units": 1' + "0" * 5000),
         "variants.treatment.units: must be a finite number (got an integer of 5001 digits)"),
        (json.dumps({**REQUEST, "relative_interval": "delta"}), "relative_interval: must be one of gbstats, log"),
    ],
)  # fmt: skip
def test_analyze_bad_request_exits_2_with_one_line_and_no_output(
    capsys: pytest.CaptureFixture[str], text: str, fragment: str
) -> None:
    code, out, err = run(capsys, "analyze", "-", stdin=text)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and fragment in err


def test_pilot_apply_json_prints_the_key_once(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "pilot", "apply", str(SPEC), "--json")
    first = json.loads(out)
    assert code == 0 and first["pilot"] == "bike-share" and first["experiments"] == ["onboarding-v2"]
    assert first["api_key"].startswith("rhz_")
    code, out, _ = run(capsys, "pilot", "apply", str(SPEC), "--json")
    assert code == 0 and json.loads(out)["api_key"] is None


def test_invalid_spec_exits_2_naming_line_and_field(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.read_text().replace("{control: 0.5, guided: 0.5}", "{control: 0.5, guided: 0.4}"))
    code, out, err = run(capsys, "pilot", "apply", str(bad))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "bad.yaml:" in err and "variants" in err
    code, _, err = run(capsys, "pilot", "apply", str(tmp_path / "missing.yaml"))
    assert code == 2 and "no such file" in err


def test_assign_matches_the_rule(capsys: pytest.CaptureFixture[str], state: Path) -> None:
    run(capsys, "pilot", "apply", str(SPEC))
    store = Store(f"sqlite:///{state / 'state' / 'rhizome.db'}")
    pilot = store.pilot("bike-share")
    for pid in ("p-1", "p-2", "p-3", "anna"):
        code, out, _ = run(capsys, "assign", "onboarding-v2", pid)
        assert code == 0 and out.strip() == variant_for(pilot, pilot.experiments[0], pid)
    code, _, err = run(capsys, "assign", "nope", "p-1")
    assert code == 2 and "no such experiment" in err


def test_results_piped_into_analyze_reproduce_the_analysis(capsys: pytest.CaptureFixture[str], state: Path) -> None:
    run(capsys, "pilot", "apply", str(SPEC))
    store = Store(f"sqlite:///{state / 'state' / 'rhizome.db'}")
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for variant, units, trips, minutes in (("control", 500, 150, 6000.0), ("guided", 510, 180, 6600.0)):
        for metric, n, total, squares in (("$units", units, 0, 0), ("trip_completed", units, trips, trips),
                                          ("ride_minutes", units, minutes, minutes * 30)):  # fmt: skip
            rows.append({"experiment_key": "onboarding-v2", "metric": metric, "variant": variant, "segment": "",
                         "partition": 0, "n": n, "sum": total, "sum_squares": squares, "x_sum": 0.0,
                         "x_sum_squares": 0.0, "sum_products": 0.0, "updated_at": now})  # fmt: skip
    store.write_rows({m.Aggregate: rows})
    code, out, _ = run(capsys, "results", "onboarding-v2", "--json")
    results = json.loads(out)
    assert code == 0 and results["variants"]["guided"]["units"] == 510
    assert results["relative_interval"] == "log"
    assert results["metrics"]["trip_completed"]["data"]["guided"] == {"n": 510, "sum": 180}
    code, again, _ = run(capsys, "analyze", "-", stdin=out)
    assert code == 0 and json.loads(again) == results["analysis"]
    gbstats = json.dumps({**results, "relative_interval": "gbstats"})
    code, parity, _ = run(capsys, "analyze", "-", stdin=gbstats)
    assert (
        code == 0 and json.loads(parity)["comparisons"][0]["ci_low"] != results["analysis"]["comparisons"][0]["ci_low"]
    )
    code, _, err = run(capsys, "results", "nope", "--json")
    assert code == 2 and "no such experiment" in err


def test_keys_create_list_revoke(capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "pilot", "apply", str(SPEC))
    code, out, _ = run(capsys, "keys", "create", "bike-share", "--label", "app v2")
    assert code == 0 and out.startswith("rhz_")
    code, out, _ = run(capsys, "keys", "list")
    assert code == 0 and "app v2" in out and out.count("active") == 2
    code, _, _ = run(capsys, "keys", "revoke", "1")
    code, out, _ = run(capsys, "keys", "list", "bike-share")
    assert out.count("active") == 1 and "revoked" in out
    code, _, err = run(capsys, "keys", "revoke", "first")
    assert code == 2 and "id == 'first'" in err
    code, _, err = run(capsys, "keys", "create")
    assert code == 2 and "target" in err


def test_the_console_script_is_installed() -> None:
    rhizome = shutil.which("rhizome") or str(ROOT / ".venv" / "bin" / "rhizome")
    result = subprocess.run([rhizome, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    for command in (
        "demo",
        "up",
        "broker",
        "worker",
        "ingest",
        "console",
        "pilot",
        "results",
        "analyze",
        "assign",
        "erase",
    ):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
            f"{b}: &{b} [{','.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
        ), "yaml: the spec holds more than 20,000 values"),
        ("pilot: &p {key: bike-share, name: x, again: *p}\n", "pilot.again: an alias refers to a node that holds it"),
        ("pilot:\n  description: " + "a" * (2 << 20) + "\n", "yaml: the spec has more than 1,048,576 bytes"),
    ],
    ids=["alias bomb", "alias loop", "2 MiB"],
)  # fmt: skip
def test_a_hostile_spec_exits_2_at_once_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, fragment: str
) -> None:
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(content)
    started = datetime.now(UTC)
    code, out, err = run(capsys, "pilot", "apply", str(hostile))
    # Loosely: the alias bomb took 29 s and 865 MB before the bounds; a refusal takes milliseconds.
    assert (datetime.now(UTC) - started).total_seconds() < 3
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("hostile.yaml") and fragment in err


def test_analyze_refuses_a_request_that_is_not_utf8(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "req.json"
    path.write_bytes(b'{"engine": "\xff"}')
    code, out, err = run(capsys, "analyze", str(path))
    assert (code, out) == (2, "")
    assert "request: not UTF-8 (byte 0xff at offset 12)" in err
