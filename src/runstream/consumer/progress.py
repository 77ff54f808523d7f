"""Progress logging for the streaming job: one log line per micro-batch, with Kafka lag.

Spark reports each finished micro-batch to ``StreamingQueryListener``s. The Kafka source's
``metrics`` carry how far the batch's end offsets are behind the latest offsets in the topics
(``maxOffsetsBehindLatest``, ``avgOffsetsBehindLatest``), which is the job's lag in records:
the number an operator watches to see whether the job keeps up with producers and backfills.
The listener is installed once per SparkSession and logs every query of that session.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

_INSTALLED: set[int] = set()


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def summarize(progress: Any) -> dict[str, Any]:
    """The figures worth a log line from one ``StreamingQueryProgress``."""
    sources = list(progress.sources or [])
    lag_max = 0.0
    lag_avg = 0.0
    for source in sources:
        metrics = dict(source.metrics or {})
        lag_max = max(lag_max, _number(metrics.get("maxOffsetsBehindLatest")))
        lag_avg = max(lag_avg, _number(metrics.get("avgOffsetsBehindLatest")))
    durations = dict(progress.durationMs or {})
    return {
        "name": progress.name,
        "batch": progress.batchId,
        "rows": progress.numInputRows,
        "rows_per_s": round(_number(progress.processedRowsPerSecond), 1),
        "batch_ms": durations.get("triggerExecution", 0),
        "lag_max": int(lag_max),
        "lag_avg": round(lag_avg, 1),
    }


def _listener_class() -> type:
    from pyspark.sql.streaming.listener import StreamingQueryListener

    class ProgressLogger(StreamingQueryListener):
        """Logs start, every batch's progress (incl. lag) and termination."""

        def onQueryStarted(self, event: Any) -> None:
            log.info("query %s started (id %s, run %s)", event.name, event.id, event.runId)

        def onQueryProgress(self, event: Any) -> None:
            s = summarize(event.progress)
            log.info(
                "query %s batch %s: %s row(s) in %s ms (%.1f rows/s); lag max %s, avg %.1f "
                "record(s) behind latest",
                s["name"], s["batch"], s["rows"], s["batch_ms"], s["rows_per_s"],
                s["lag_max"], s["lag_avg"],
            )  # fmt: skip

        def onQueryIdle(self, event: Any) -> None:
            pass

        def onQueryTerminated(self, event: Any) -> None:
            if event.exception:
                log.error("query %s failed: %s", event.id, event.exception)
            else:
                log.info("query %s stopped", event.id)

    return ProgressLogger


def install(spark: SparkSession) -> None:
    """Register the progress logger on ``spark`` unless this session already has it."""
    key = id(spark._jsparkSession) if hasattr(spark, "_jsparkSession") else id(spark)
    if key in _INSTALLED:
        return
    spark.streams.addListener(_listener_class()())
    _INSTALLED.add(key)
