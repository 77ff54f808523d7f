"""The job's DDL: idempotent, partitioned as designed, guarded by NOT NULL and CHECK.

Fault: none; load: three empty tables. Invariants: a second ``create_tables`` adds no Delta
version; model_runs is partitioned by (commodity, run_date) with run_date generated from
run_timestamp; rows breaking NOT NULL or a CHECK are refused; the seed's table comment is kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runstream.consumer.rebuild import table_version
from runstream.consumer.tables import TableNames, create_tables
from runstream.contract.fields import check_constraints

SEED_COMMENT = "Experiment tracking for all model runs - enables pruning while preserving history"

_GOOD = {
    "experiment_id": "'e1'", "model_name": "'m'", "model_version": "'v1'",
    "run_timestamp": "TIMESTAMP'2025-01-06 09:00:00'", "model_type": "'SARIMAX'",
    "training_start_date": "DATE'2022-01-01'", "training_end_date": "DATE'2024-12-31'",
    "forecast_horizon_days": "14", "commodity": "'Coffee'", "is_production": "false",
    "_rs_event_count": "1", "_rs_last_event_id": "'ev1'",
    "_rs_last_event_time": "TIMESTAMP'2025-01-06 09:00:00'",
    "_rs_first_seen_at": "TIMESTAMP'2025-01-06 09:00:00'",
    "_rs_last_seen_at": "TIMESTAMP'2025-01-06 09:00:00'",
}  # fmt: skip


def _generation(table_dir: Path, column: str) -> str:
    """A column's generation expression, from the table's first Delta log entry."""
    first = (table_dir / "_delta_log" / f"{0:020d}.json").read_text().splitlines()
    meta = next(json.loads(line)["metaData"] for line in first if '"metaData"' in line)
    field = next(f for f in json.loads(meta["schemaString"])["fields"] if f["name"] == column)
    return str(field["metadata"].get("delta.generationExpression", ""))


def _insert(spark: Any, table: str, **changes: str) -> None:
    values = {**_GOOD, **changes}
    cols = ", ".join(values)
    spark.sql(f"INSERT INTO {table} ({cols}) VALUES ({', '.join(values.values())})")


def test_create_tables_is_idempotent_and_keeps_the_designed_shape(
    spark: Any, tmp_path: Path
) -> None:
    tables = TableNames.at_path(tmp_path / "lake")
    create_tables(spark, tables)
    versions = [table_version(spark, t) for t in (tables.runs, tables.events, tables.rejects)]
    create_tables(spark, tables)
    again = [table_version(spark, t) for t in (tables.runs, tables.events, tables.rejects)]
    assert again == versions, "a second create_tables changed a table"

    detail = spark.sql(f"DESCRIBE DETAIL {tables.runs}").first()
    assert list(detail["partitionColumns"]) == ["commodity", "run_date"]
    assert detail["description"] == SEED_COMMENT
    props = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {tables.runs}").collect()}
    for name in check_constraints():
        assert f"delta.constraints.{name}" in props, name

    fields = {f.name: f for f in spark.table(tables.runs).schema.fields}
    assert _generation(tmp_path / "lake" / "model_runs", "run_date") == (
        "CAST(run_timestamp AS DATE)"
    )
    for name in ("experiment_id", "model_name", "run_timestamp", "commodity", "is_production",
                 "forecast_horizon_days", "training_start_date"):  # fmt: skip
        assert not fields[name].nullable, name
    for name in ("mae_14day", "notes", "hyperparameters"):
        assert fields[name].nullable, name
    assert list(spark.sql(f"DESCRIBE DETAIL {tables.events}").first()["partitionColumns"]) == [
        "event_date"
    ]

    _insert(spark, tables.runs)
    row = spark.table(tables.runs).first()
    assert str(row["run_date"]) == "2025-01-06", "run_date is generated from run_timestamp"
    bad = {
        "forecast_horizon_days": "0",
        "directional_accuracy": "1.5",
        "dm_pvalue": "-0.1",
        "training_start_date": "DATE'2025-01-01'",
        "cost_estimate_usd": "-1.0",
        "model_name": "NULL",
        "is_production": "NULL",
    }
    for column, value in bad.items():
        with pytest.raises(Exception, match=r"(?i)constraint|null"):
            _insert(spark, tables.runs, experiment_id="'e2'", **{column: value})
    assert spark.table(tables.runs).count() == 1
