"""What the streaming job reports: one ``BatchReport`` per micro-batch and a ``JobSummary``.

The job reports itself instead of registering a Python ``StreamingQueryListener``. Such a
listener is a py4j callback that the JVM calls from its listener bus thread; at the end of a
run (``--once``, Ctrl-C) the bus still delivers events while Python shuts down, and every run
ended with two ``ERROR StreamingQueryListenerBus ... Py4JException`` stack traces. Now:

- ``process_batch`` counts what it did (records in, valid, quarantined, run rows written,
  seconds) and returns a ``BatchReport``; the job's ``BatchTracker`` keeps it;
- the thread that waits for the query (``job.run_job``) reads ``query.recentProgress`` (a plain
  call into the JVM, no callback) to add the Kafka lag: the Kafka source's
  ``maxOffsetsBehindLatest``, how many records the job is behind the newest offsets in its
  topics, the number an operator watches to see whether the job keeps up;
- that thread hands each finished report to the caller and builds the ``JobSummary``.

Nothing here prints; the command line decides how reports look.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def kafka_lag(progress: Any) -> int | None:
    """Records behind the newest offsets after this batch, from a ``StreamingQueryProgress``:
    the largest ``maxOffsetsBehindLatest`` of its sources; ``None`` when no source reports it."""
    values = [
        _number(dict(source.metrics or {}).get("maxOffsetsBehindLatest"))
        for source in (progress.sources or [])
    ]
    known = [v for v in values if v is not None]
    return int(max(known)) if known else None


@dataclass(frozen=True)
class BatchReport:
    """One micro-batch as the job saw it.

    ``lag`` is the Kafka lag in records after the batch (``maxOffsetsBehindLatest``); ``None``
    until the job has read Spark's progress for the batch, or when Spark did not report it.
    """

    batch_id: int
    records_in: int
    valid: int
    quarantined: int
    runs_written: int
    seconds: float
    lag: int | None = None

    def line(self) -> str:
        lag = "n/a" if self.lag is None else str(self.lag)
        return (
            f"batch {self.batch_id}: {self.records_in} record(s) in, {self.valid} valid, "
            f"{self.quarantined} quarantined, {self.runs_written} run row(s) written, "
            f"{self.seconds:.1f}s, lag {lag}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {"type": "batch", **asdict(self), "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class JobSummary:
    """A whole run of the job: totals over its batches and the runs table afterwards.

    ``seconds`` is wall-clock time from the query's start to its end (idle time included).
    ``runs_in_table`` is ``None`` when the table could not be counted. ``interrupted`` says
    the run ended on SIGINT rather than on its own.
    """

    batches: int
    records_in: int
    valid: int
    quarantined: int
    runs_written: int
    seconds: float
    runs_table: str
    runs_in_table: int | None
    interrupted: bool = False

    @classmethod
    def of(
        cls,
        reports: list[BatchReport],
        *,
        seconds: float,
        runs_table: str,
        runs_in_table: int | None,
        interrupted: bool,
    ) -> JobSummary:
        return cls(
            batches=len(reports),
            records_in=sum(r.records_in for r in reports),
            valid=sum(r.valid for r in reports),
            quarantined=sum(r.quarantined for r in reports),
            runs_written=sum(r.runs_written for r in reports),
            seconds=seconds,
            runs_table=runs_table,
            runs_in_table=runs_in_table,
            interrupted=interrupted,
        )

    def line(self) -> str:
        text = (
            f"consumed {self.batches} batch(es): {self.records_in} record(s), {self.valid} "
            f"valid, {self.quarantined} quarantined, {self.runs_written} run row(s) written "
            f"in {self.seconds:.1f}s"
        )
        if self.runs_in_table is not None:
            text += f"; {self.runs_table} now holds {self.runs_in_table} run(s)"
        return f"interrupted; {text}" if self.interrupted else text

    def as_dict(self) -> dict[str, Any]:
        return {"type": "summary", **asdict(self), "seconds": round(self.seconds, 3)}


@dataclass
class BatchTracker:
    """Hand-over between the thread Spark runs ``foreachBatch`` in and the job's main thread.

    ``begin``/``finish`` are called around each batch by the batch function; the main thread
    asks for the newest batch (to stop between batches) and takes finished reports.
    """

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _latest: int | None = None
    _finished: list[BatchReport] = field(default_factory=list)

    def begin(self, batch_id: int) -> None:
        with self._lock:
            self._latest = batch_id

    def finish(self, report: BatchReport | None) -> None:
        """End the newest batch; ``report`` is ``None`` when it failed."""
        if report is not None:
            with self._lock:
                self._finished.append(report)

    @property
    def latest(self) -> int | None:
        """The newest batch that began, running or finished."""
        with self._lock:
            return self._latest

    def take(self) -> list[BatchReport]:
        """Finished reports not taken before, oldest first."""
        with self._lock:
            taken, self._finished = self._finished, []
            return taken
