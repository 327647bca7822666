"""The sink: writes the figures that changed into the store, per partition, idempotently.

Each row is keyed by its partition and carries the partition's full value (not an increment), so
writing it twice, or after a restart, gives the same table. After the processor counted a partition's
figures anew (a restart, a rebalance, a registry change), its rows are replaced rather than updated:
a figure nobody contributes to any more (the days of a participant no longer counted under a new
consent mode, the segments the pilot no longer breaks down by) leaves the store with it. Database
writes run in a thread so the event loop never waits on them; a failed write keeps its figures for
the next flush.

A row the database refuses for its data (`experiments.store.ROW_REFUSED`: a NUL or an overlong value
that slipped past the contract) never blocks the others, nor is it tried again: the store writes the
rest. A refused text goes to the dead-letter topic with the database's reason, as an event the stream
could not take would: it is a citizen's input, kept for someone to look at. A refused figure is
logged and dropped from the write: it is derived from events the states keep, carries nothing a
person could correct, and trying it again would meet the same refusal (it is written again only
when it changes). A figure that is not a finite number is never written (logged and dropped likewise).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from experiments import models as m
from experiments.attribution import Key, day_date, ms_datetime
from experiments.store import RefusedRow, Store
from streams.events import dead_letter

log = logging.getLogger("rhizome.sink")

Rows = dict[type[m.Base], list[dict[str, Any]]]


def rows_for(partition: int, figures: Mapping[Key, list[float]], at: datetime) -> Rows:
    """Returns the store rows of one partition's figures (keys as `Processor` builds them)."""
    rows: Rows = {
        m.Aggregate: [],
        m.ExposureDay: [],
        m.DailyAdoption: [],
        m.RetentionCohort: [],
        m.FeedbackStat: [],
    }
    for key, v in figures.items():
        if not all(map(math.isfinite, v)):
            # The contract bounds every number so that no sum overflows: this is a defect, shown.
            log.error("figure %r of partition %d is not finite (%r): not written", key, partition, v)
            continue
        pilot, kind = key[0], key[1]
        if kind == "a":
            _, _, experiment, metric, variant, segment = key
            stats = {
                "n": round(v[0]),
                "sum": v[1],
                "sum_squares": v[2],
                "x_sum": v[3],
                "x_sum_squares": v[4],
                "sum_products": v[5],
            }
            ids = {"experiment_key": experiment, "metric": metric, "variant": variant, "partition": partition}
            rows[m.Aggregate].append({**ids, "segment": segment, **stats, "updated_at": at})
        elif kind == "x":
            _, _, experiment, metric, variant, day = key
            rows[m.ExposureDay].append(
                {
                    "experiment_key": experiment,
                    "metric": metric,
                    "variant": variant,
                    "day": day_date(day),
                    "partition": partition,
                    "n": round(v[0]),
                    "sum": v[1],
                    "sum_squares": v[2],
                    "x_sum": v[3],
                    "x_sum_squares": v[4],
                    "sum_products": v[5],
                }
            )
        elif kind == "d":
            _, _, day, segment = key
            rows[m.DailyAdoption].append(
                {
                    "pilot_key": pilot,
                    "day": day_date(day),
                    "segment": segment,
                    "partition": partition,
                    "active": round(v[0]),
                    "new": round(v[1]),
                    "activated": round(v[2]),
                }
            )
        elif kind == "r":
            _, _, cohort, week, segment = key
            rows[m.RetentionCohort].append(
                {
                    "pilot_key": pilot,
                    "cohort_week": day_date(cohort),
                    "week_index": week,
                    "segment": segment,
                    "partition": partition,
                    "participants": round(v[0]),
                }
            )
        elif kind == "f":
            _, _, experiment, variant, fkind, bucket = key
            rows[m.FeedbackStat].append(
                {
                    "pilot_key": pilot,
                    "experiment_key": experiment,
                    "variant": variant,
                    "kind": fkind,
                    "bucket": bucket,
                    "partition": partition,
                    "n": round(v[0]),
                    "sum": v[1],
                    "sum_squares": v[2],
                }
            )
    return {t: r for t, r in rows.items() if r}


class Sink:
    """Flushes a processor's changed figures and the citizens' texts into the store; sends a text the
    database refuses to the dead letters (`send_dead_letter`, which the worker wires to its topic)."""

    def __init__(self, store: Store, send_dead_letter: Callable[[bytes], Awaitable[Any]] | None = None) -> None:
        self.store = store
        self.send_dead_letter = send_dead_letter
        self._texts: list[dict[str, Any]] = []
        #: Erasure requests applied since the last write: (participant, the first time not erased).
        self._erasures: list[tuple[str, datetime]] = []
        #: The last write begun (done or not): `settle` waits for it.
        self._writing: asyncio.Future[list[RefusedRow]] | None = None
        #: Held by each flush, which waits for a write left in flight first: one write at a time.
        self._lock = asyncio.Lock()
        self.flushes = 0
        self.failures = 0
        #: Rows the database refused (each left out, never tried again).
        self.refused = 0

    async def settle(self) -> None:
        """Returns once the write in flight (if any) is done. Called when partitions are revoked, so a
        figure read before the revocation cannot land after the partition's new owner wrote its own."""
        writing = self._writing
        if writing is not None:
            with contextlib.suppress(Exception):
                await writing

    def keep_texts(self, texts: Iterable[dict[str, Any]]) -> None:
        self._texts.extend(texts)

    def forget(self, erasures: Iterable[tuple[str, int]]) -> None:
        """Has the next write delete the texts of erased participants up to their requests' times (ms):
        `rhizome erase` deleted those stored then, but the worker may have kept others since, read
        before the request (in its buffer, or already written). The write deletes them after writing
        the texts it carries, in the same transaction."""
        for participant, ms in erasures:
            # Erased are the events whose time, in whole ms, is at most the request's (`Processor`).
            self._erasures.append((participant, ms_datetime(ms + 1)))

    async def flush(self, processor: Any, owned: set[int]) -> None:
        """Writes what changed in the partitions this worker owns; keeps it on failure."""
        async with self._lock:
            await self._flush(processor, owned)

    async def store_texts(self, processor: Any, owned: set[int], retry: float) -> None:
        """Returns once every text and erasure kept so far is stored (with whatever else changed),
        trying again every `retry` seconds. A batch is acknowledged only then: texts are kept nowhere
        else, and an acknowledged batch is never read again."""
        while True:
            async with self._lock:
                # Under the lock, what no write stored is kept here (a cancelled write's too).
                if not self._texts and not self._erasures:
                    return
                if await self._flush(processor, owned):
                    return
            await asyncio.sleep(retry)

    async def _flush(self, processor: Any, owned: set[int]) -> bool:
        """Writes what changed; returns False when the write failed (what it carried is kept)."""
        # A write left in flight by a cancelled flush ends first: one write at a time.
        await self.settle()
        dirty: dict[int, dict[Key, list[float]]] = processor.aggregates.take_dirty()
        # Taken with the figures, in the same turn of the loop: a rebuilt partition's are all of them.
        replaced = processor.aggregates.take_rebuilt() & owned
        texts, self._texts = self._texts, []
        erasures, self._erasures = self._erasures, []
        figures = {p: f for p, f in dirty.items() if p in owned}
        if not figures and not texts and not replaced and not erasures:
            return True
        at = datetime.now(UTC)
        loop = asyncio.get_running_loop()
        writing = self._writing = loop.run_in_executor(None, self._write, figures, texts, at, replaced, erasures)
        try:
            # Shielded: cancelling the flush must not mark the write done while its thread goes on.
            refused = await asyncio.shield(writing)
            self.flushes += 1
        except (Exception, asyncio.CancelledError) as exc:
            # Failed, or cancelled while the write goes on in its thread (and may fail): kept, to be
            # written again (rows are keyed, so a second write of the same changes nothing).
            for p, f in figures.items():
                processor.aggregates.dirty[p].update(f)
            processor.aggregates.rebuilt |= replaced
            self._texts = texts + self._texts
            self._erasures = erasures + self._erasures
            if isinstance(exc, asyncio.CancelledError):
                raise
            self.failures += 1
            log.exception("writing to the store failed; keeping the figures for the next flush")
            return False
        await self._set_aside(refused)
        return True

    async def _set_aside(self, refused: list[RefusedRow]) -> None:
        """Sends the refused texts to the dead letters; logs the refused figures (see the module)."""
        self.refused += len(refused)
        for r in refused:
            if r.table is m.FeedbackText and self.send_dead_letter is not None:
                reason = f"the store refused the text: {r.reason}"
                await self.send_dead_letter(dead_letter(reason, None, r.row, table=m.FeedbackText.__tablename__))
                log.error("the store refused text %s (%s): sent to the dead letters", r.row.get("event_id"), r.reason)
            else:
                where = {k: v for k, v in r.row.items() if k != "text"}
                log.error("the store refused a row of %s, dropped: %s (%r)", r.table.__tablename__, r.reason, where)

    def _write(
        self,
        figures: Mapping[int, Mapping[Key, list[float]]],
        texts: list[dict[str, Any]],
        at: datetime,
        replaced: set[int],
        erasures: list[tuple[str, datetime]],
    ) -> list[RefusedRow]:
        rows: Rows = {m.FeedbackText: texts}
        for partition, figs in figures.items():
            for table, batch in rows_for(partition, figs, at).items():
                rows.setdefault(table, []).extend(batch)
        refused: list[RefusedRow] = []
        self.store.write_rows(rows, replacing=replaced, erasing=erasures, refused=refused)
        return refused
