"""Helpers shared by the Spark tests: build events, produce raw bytes, run the job, read back.

Events are produced as raw Kafka records (``contract.encode(build_event(...))``) rather than
through ``emit_run``, so a test decides exactly which bytes go to which topic, how often and in
what order: duplicates, replays and out-of-order arrivals are the point of these tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from runstream import contract
from runstream.consumer.job import JobConfig, start
from runstream.consumer.tables import TableNames
from runstream.contract import build_event, prepare_run
from runstream.demo import seed_experiment

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)


def make_run(**overrides: Any) -> dict[str, Any]:
    """A valid run payload (validated like emit_run does): the seed's example run at ``T0``,
    with ``overrides``."""
    run = {**seed_experiment(), "run_timestamp": T0, "run_by": "tests", **overrides}
    del run["experiment_id"]
    _, payload = prepare_run(run)
    return payload


def recorded(experiment_id: str, at: datetime, **run: Any) -> dict[str, Any]:
    return build_event(contract.RUN_RECORDED, experiment_id, run=make_run(**run), event_time=at)


def promoted(experiment_id: str, at: datetime, is_production: bool = True) -> dict[str, Any]:
    return build_event(
        contract.RUN_PROMOTED, experiment_id,
        promotion={"is_production": is_production}, event_time=at,
    )  # fmt: skip


def annotated(experiment_id: str, at: datetime, notes: str) -> dict[str, Any]:
    return build_event(
        contract.RUN_ANNOTATED, experiment_id, annotation={"notes": notes}, event_time=at
    )


def new_id(prefix: str = "run") -> str:
    return f"{prefix}-{uuid.uuid4()}"


def encoded(event: dict[str, Any], writer: contract.SchemaVersion | None = None) -> bytes:
    return contract.encode(event, writer)


def key_of(event: dict[str, Any]) -> bytes:
    return str(event["experiment_id"]).encode()


def job_config(bootstrap: str, live: str, replay: str, root: Path, **changes: Any) -> JobConfig:
    config = JobConfig.from_env(
        bootstrap_servers=bootstrap, topic=live, replay_topic=replay,
        lake=root / "lake", table="", checkpoint=str(root / "checkpoint"),
    )  # fmt: skip
    return config.with_(**changes) if changes else config


def run_once(spark: Any, config: JobConfig) -> None:
    """One availableNow pass: everything in the topics now, then stop."""
    query = start(spark, config, once=True)
    query.awaitTermination()
    if query.exception() is not None:
        raise AssertionError(f"the streaming query failed: {query.exception()}")


def utc(value: datetime) -> datetime:
    """How Spark (session zone UTC) returns an aware datetime: naive UTC."""
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def rows_by_id(spark: Any, table: str) -> dict[str, dict[str, Any]]:
    rows = [r.asDict(recursive=True) for r in spark.table(table).collect()]
    by_id = {r["experiment_id"]: r for r in rows}
    assert len(by_id) == len(rows), "model_runs holds more than one row for an experiment_id"
    return by_id


def comparable(spark: Any, table_or_df: Any) -> Any:
    """A frame that set operations accept: top-level maps become sorted entry arrays, columns
    with maps nested inside become JSON text (set operations reject map types)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import MapType

    df = spark.table(table_or_df) if isinstance(table_or_df, str) else table_or_df

    def column(f: Any) -> Any:
        if isinstance(f.dataType, MapType):
            return F.array_sort(F.map_entries(f.name)).alias(f.name)
        if "map<" in f.dataType.simpleString():
            return F.to_json(f.name).alias(f.name)
        return F.col(f.name)

    return df.select(*[column(f) for f in df.schema.fields])


def assert_same_rows(spark: Any, left: Any, right: Any) -> None:
    """Every column of every row equal, duplicates included (exceptAll both ways)."""
    a, b = comparable(spark, left), comparable(spark, right)
    assert a.count() == b.count()
    only_left = a.exceptAll(b).collect()
    only_right = b.exceptAll(a).collect()
    assert not only_left and not only_right, f"differ: {only_left[:3]} vs {only_right[:3]}"


def newest(events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return max(events, key=lambda e: (e["event_time"], e["event_id"]))


def reference_fold(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The projection rule in plain Python (see projection.py), to check the Spark fold.

    Per experiment_id: run columns from the newest run_recorded; is_production and notes from
    the newest event that states them; no row without a run_recorded.
    """
    by_run: dict[str, dict[str, dict[str, Any]]] = {}
    for event in events:
        by_run.setdefault(event["experiment_id"], {})[event["event_id"]] = event
    out: dict[str, dict[str, Any]] = {}
    for experiment_id, unique in by_run.items():
        evs = list(unique.values())
        runs = [e for e in evs if e["event_type"] == contract.RUN_RECORDED]
        if not runs:
            continue
        run = newest(runs)["run"]
        prod = [e for e in evs if _prod(e) is not None]
        notes = [e for e in evs if _notes(e) is not None]
        last = newest(evs)
        out[experiment_id] = {
            "model_name": run["model_name"],
            "mae_14day": run["mae_14day"],
            "run_timestamp": utc(run["run_timestamp"]),
            "is_production": _prod(newest(prod)) if prod else False,
            "notes": _notes(newest(notes)) if notes else None,
            "_rs_event_count": len(evs),
            "_rs_last_event_id": last["event_id"],
            "_rs_last_event_time": utc(last["event_time"]),
        }
    return out


def _prod(event: dict[str, Any]) -> bool | None:
    if event["event_type"] == contract.RUN_PROMOTED:
        return bool(event["promotion"]["is_production"])
    if event["event_type"] == contract.RUN_RECORDED:
        return event["run"]["is_production"]  # type: ignore[no-any-return]
    return None


def _notes(event: dict[str, Any]) -> str | None:
    if event["event_type"] == contract.RUN_ANNOTATED:
        return str(event["annotation"]["notes"])
    if event["event_type"] == contract.RUN_RECORDED:
        return event["run"]["notes"]  # type: ignore[no-any-return]
    return None


def project_columns(row: dict[str, Any]) -> dict[str, Any]:
    """The columns ``reference_fold`` predicts, picked from a model_runs row."""
    keys = ("model_name", "mae_14day", "run_timestamp", "is_production", "notes",
            "_rs_event_count", "_rs_last_event_id", "_rs_last_event_time")  # fmt: skip
    return {k: row[k] for k in keys}


def table_names(root: Path) -> TableNames:
    return TableNames.at_path(root / "lake")


HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def build_fastavro_event(**run_overrides: Any) -> dict[str, Any]:
    """A run_recorded event whose run skips producer validation (fastavro accepts any value
    of the right Avro type), as a buggy or foreign producer might write it."""
    event = recorded(new_id("invalid"), T0)
    event["run"] = {**event["run"], **run_overrides}
    return event
