"""The worker's health (streams/health.py): a recovery, a partition's commits or the store's writes that
stop are judged unhealthy, ones that move are not; `/healthz` says why with a 503, `/metrics` serves
the worker's figures in Prometheus' format."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from experiments.settings import load_settings
from streams.health import WATCH_EVERY, CommitWatch, RecoveryWatch, StoreWatch, WorkerHealth, serve_health


def test_a_recovery_without_progress_is_stalled_after_the_limit() -> None:
    watch = RecoveryWatch(stall_after=60)
    assert not watch.stalled(0, True, (346, 2))
    assert not watch.stalled(59, True, (346, 2))
    assert watch.stalled(60, True, (346, 2))


def test_progress_or_the_end_of_recovery_resets_the_clock() -> None:
    watch = RecoveryWatch(stall_after=60)
    watch.stalled(0, True, (346, 2))
    assert not watch.stalled(50, True, (300, 2))  # records were read
    assert not watch.stalled(100, True, (300, 2))
    assert not watch.stalled(105, True, (300, 3))  # a new rebalance
    assert not watch.stalled(160, True, (300, 3))
    assert not watch.stalled(170, False, (0, 3))  # recovery ended
    assert not watch.stalled(200, True, (0, 3))
    assert watch.stalled(260, True, (0, 3))


def test_a_partition_whose_commits_stop_while_records_wait_is_stalled_after_the_limit() -> None:
    watch = CommitWatch(stall_after=60)
    assert watch.stalled(0, {"usage/3": (517, 718), "usage/1": (700, 700)}) == []
    assert watch.stalled(59, {"usage/3": (517, 740), "usage/1": (720, 730)}) == []
    assert watch.stalled(60, {"usage/3": (517, 760), "usage/1": (730, 730)}) == ["usage/3"]


def test_moving_catching_up_or_changing_hands_resets_a_partitions_clock() -> None:
    watch = CommitWatch(stall_after=60)
    watch.stalled(0, {"usage/3": (517, 718)})
    assert watch.stalled(50, {"usage/3": (520, 718)}) == []  # it moved
    assert watch.stalled(100, {"usage/3": (520, 718)}) == []
    assert watch.stalled(105, {"usage/3": (718, 718)}) == []  # caught up
    assert watch.stalled(110, {"usage/3": (718, 900)}) == []  # new records, clock starts now
    assert watch.stalled(150, {}) == []  # the partition went to another worker
    assert watch.stalled(160, {"usage/3": (718, 900)}) == []  # and came back: a fresh start
    assert watch.stalled(219, {"usage/3": (718, 900)}) == []
    assert watch.stalled(220, {"usage/3": (718, 900)}) == ["usage/3"]


def test_a_partition_never_committed_counts_from_offset_zero_and_reset_forgets_everything() -> None:
    watch = CommitWatch(stall_after=60)
    assert watch.stalled(0, {"usage/0": (None, 0), "usage/2": (None, 5)}) == []
    assert watch.stalled(30, {"usage/0": (None, 0), "usage/2": (None, 5)}) == []
    watch.reset()  # a rebalance
    assert watch.stalled(70, {"usage/0": (None, 0), "usage/2": (None, 5)}) == []
    assert watch.stalled(130, {"usage/0": (None, 0), "usage/2": (None, 5)}) == ["usage/2"]


def test_store_writes_fail_from_the_first_failure_after_a_success_until_the_next_success() -> None:
    watch = StoreWatch(stall_after=60)
    assert watch.failing_for(10) is None
    watch.written(10, succeeded=0, failed=0)  # nothing to write
    assert watch.failing_for(20) is None
    watch.written(20, succeeded=0, failed=1)
    watch.written(50, succeeded=0, failed=3)  # failing still, since 20
    assert watch.failing_for(80) == 60
    watch.written(90, succeeded=1, failed=2)  # a write went through
    assert watch.failing_for(100) is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_verdict_names_the_first_stall_and_clears_when_it_does() -> None:
    clock = Clock()
    health = WorkerHealth(stall_after=60, clock=clock)
    assert health.verdict() == ("starting", "")
    health.judge("recovery", None)
    assert health.verdict() == ("ok", "")
    health.judge("commits", "committed offsets stopped for 60 s while records waited: usage/0 at 20 of 90")
    assert health.verdict() == (
        "unhealthy",
        "committed offsets stopped for 60 s while records waited: usage/0 at 20 of 90",
    )
    health.judge("commits", None)
    assert health.verdict().healthy
    health.store_written(succeeded=0, failed=1)
    clock.now += 59
    health.judge("commits", None)
    assert health.verdict().healthy
    clock.now += 1
    assert health.verdict() == ("unhealthy", "store writes have failed for 60 s")
    health.store_written(succeeded=1, failed=0)
    assert health.verdict().healthy


def test_judgements_that_stop_coming_are_unhealthy() -> None:
    # The loop that judges is the only one to see a stall: if it stops, the worker must not look healthy.
    clock = Clock()
    health = WorkerHealth(stall_after=60, clock=clock)
    health.judge("recovery", None)
    clock.now += 60 + 2 * WATCH_EVERY
    assert health.verdict().healthy
    clock.now += 1
    verdict = health.verdict()
    assert verdict.status == "unhealthy" and verdict.reason.startswith("progress not judged for 71 s")


def serving(health: WorkerHealth, scenario: Callable[[str], Awaitable[None]]) -> None:
    """Runs `scenario(base URL)` while the health is served on a free loopback port."""

    async def main() -> None:
        runner, port = await serve_health(health, "127.0.0.1", 0)
        try:
            await scenario(f"http://127.0.0.1:{port}")
        finally:
            await runner.cleanup()

    asyncio.run(main())


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_healthz_answers_200_while_healthy_and_503_with_the_reason_when_not() -> None:
    clock = Clock()
    health = WorkerHealth(stall_after=10, clock=clock)
    answers: list[tuple[int, Any]] = []
    stalled = "table recovery made no progress for 10 s (346 changelog records still to read)"

    async def scenario(url: str) -> None:
        async with httpx.AsyncClient() as client:
            for judgement in (None, stalled):
                health.judge("recovery", judgement)
                answer = await client.get(f"{url}/healthz")
                answers.append((answer.status_code, answer.json()))

    serving(health, scenario)
    assert answers == [(200, {"status": "ok"}), (503, {"status": "unhealthy", "reason": stalled})]


def test_metrics_are_served_in_prometheus_format() -> None:
    health = WorkerHealth(stall_after=10)
    m = health.metrics
    m.applied.inc(870)
    m.duplicates.inc(12)
    m.dead_letters.inc(3)
    m.batch_seconds.observe(0.3)
    m.lag.labels("rhizome.usage", "2").set(41)
    health.store_written(succeeded=0, failed=2)
    health.store_written(succeeded=1, failed=0)
    texts: list[str] = []

    async def scenario(url: str) -> None:
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"{url}/metrics")
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
            texts.append(answer.text)

    serving(health, scenario)
    samples = metric_samples(texts[0])
    assert samples[("rhizome_worker_events_applied_total", ())] == 870
    assert samples[("rhizome_worker_duplicate_events_total", ())] == 12
    assert samples[("rhizome_worker_dead_letters_total", ())] == 3
    assert samples[("rhizome_worker_store_write_errors_total", ())] == 2
    assert samples[("rhizome_worker_consumer_lag", (("partition", "2"), ("topic", "rhizome.usage")))] == 41
    assert samples[("rhizome_worker_batch_seconds_count", ())] == 1
    assert samples[("rhizome_worker_batch_seconds_bucket", (("le", "0.5"),))] == 1
    assert samples[("rhizome_worker_batch_seconds_bucket", (("le", "0.25"),))] == 0
    assert samples[("rhizome_worker_last_flush_timestamp_seconds", ())] > 1.7e9
    assert samples[("rhizome_worker_healthy", ())] == 1


def test_a_port_taken_is_refused_naming_the_setting() -> None:
    async def main() -> None:
        runner, port = await serve_health(WorkerHealth(stall_after=10), "127.0.0.1", 0)
        try:
            with pytest.raises(OSError, match=f"RHIZOME_WORKER_HEALTH_PORT == {port}: cannot serve"):
                await serve_health(WorkerHealth(stall_after=10), "127.0.0.1", port)
        finally:
            await runner.cleanup()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RHIZOME_WORKER_HEALTH_PORT", "70000", "RHIZOME_WORKER_HEALTH_PORT == 70000, must be >= 0 and <= 65535."),
        ("RHIZOME_WORKER_HEALTH_PORT", "http", "RHIZOME_WORKER_HEALTH_PORT == 'http', must be an integer."),
        ("RHIZOME_WORKER_STALL_SECONDS", "0", "RHIZOME_WORKER_STALL_SECONDS == 0, must be >= 1 and <= 86400."),
    ],
)
def test_health_settings_out_of_range_are_refused_naming_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        load_settings({name: value})
    assert str(caught.value) == message


def test_the_health_settings_default_to_a_free_loopback_port() -> None:
    settings = load_settings({})
    assert (settings.worker_health_host, settings.worker_health_port) == ("127.0.0.1", 0)
    assert load_settings({"RHIZOME_WORKER_HEALTH_PORT": "8710"}).worker_health_port == 8710
