"""Helpers shared by the Spark tests: build events, produce raw bytes, run the job, read back.

Events are produced as raw Kafka records (``contract.encode(build_event(...))``) rather than
through ``emit_run``, so a test decides exactly which bytes go to which topic, how often and in
what order: duplicates, replays and out-of-order arrivals are the point of these tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runstream.consumer.tables import TableNames
from runstream.devtools.testkit import (
    HOUR,
    MINUTE,
    T0,
    annotated,
    build_fastavro_event,
    encoded,
    job_config,
    key_of,
    make_run,
    new_id,
    newest,
    project_columns,
    promoted,
    recorded,
    reference_fold,
    rows_by_id,
    run_once,
    utc,
)

__all__ = [
    "HOUR", "MINUTE", "T0", "annotated", "assert_same_rows", "build_fastavro_event",
    "comparable", "encoded", "job_config", "key_of", "make_run", "new_id", "newest",
    "project_columns", "promoted", "recorded", "reference_fold", "rows_by_id", "run_once",
    "table_names", "utc",
]  # fmt: skip


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


def table_names(root: Path) -> TableNames:
    return TableNames.at_path(root / "lake")
