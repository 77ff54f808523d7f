"""The three Delta tables: where they live, and their idempotent DDL (from ``schemas/*.sql``).

Locally each table is a path under the lake folder (``delta.`/lake/model_runs```); given a
catalog name for ``model_runs`` (``commodity.experiments.model_runs`` on Databricks), the event
log and the quarantine sit beside it in the same schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runstream import contract

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

RUNS = "model_runs"
EVENTS = "model_run_events"
REJECTS = "model_run_rejects"

# CHECK constraints: the backstop behind the job's own validation, which rejects such rows
# into the quarantine first (a failing CHECK would stop the stream).
CHECKS: dict[str, str] = {
    "positive_horizon": "forecast_horizon_days > 0",
    "training_window_ordered": "training_start_date <= training_end_date",
    "directional_accuracy_fraction": (
        "directional_accuracy IS NULL OR (directional_accuracy >= 0 AND directional_accuracy <= 1)"
    ),
    "dm_pvalue_fraction": "dm_pvalue IS NULL OR (dm_pvalue >= 0 AND dm_pvalue <= 1)",
    "non_negative_cost": "cost_estimate_usd IS NULL OR cost_estimate_usd >= 0",
    "non_negative_time": "execution_time_seconds IS NULL OR execution_time_seconds >= 0",
}


@dataclass(frozen=True)
class TableNames:
    """SQL names of the three tables."""

    runs: str
    events: str
    rejects: str

    @classmethod
    def at_path(cls, lake: str | Path) -> TableNames:
        root = Path(lake).expanduser().absolute()
        return cls(*(f"delta.`{root / n}`" for n in (RUNS, EVENTS, REJECTS)))

    @classmethod
    def in_catalog(cls, runs_name: str) -> TableNames:
        prefix = runs_name.rsplit(".", 1)[0] + "." if "." in runs_name else ""
        return cls(runs_name, f"{prefix}{EVENTS}", f"{prefix}{REJECTS}")


def _ddl(file_name: str) -> str:
    return resources.files("runstream").joinpath(f"_schemas/{file_name}").read_text("utf-8")


_AVRO_TO_SQL = {"string": "STRING", "double": "DOUBLE", "boolean": "BOOLEAN", "int": "INT",
                "long": "BIGINT"}  # fmt: skip


def _sql_type(avro_type: Any) -> str:
    if isinstance(avro_type, list):
        return _sql_type(next(t for t in avro_type if t != "null"))
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "date":
            return "DATE"
        if logical in ("timestamp-micros", "timestamp-millis"):
            return "TIMESTAMP"
        if avro_type["type"] == "map":
            return f"MAP<STRING, {_sql_type(avro_type['values'])}>"
        return _sql_type(avro_type["type"])
    return _AVRO_TO_SQL[avro_type]


def run_fields() -> list[tuple[str, str]]:
    """(name, SQL type) of the run payload, from the newest event schema."""
    schema = json.loads(contract.latest().json)
    run = next(f for f in schema["fields"] if f["name"] == "run")
    record = next(t for t in run["type"] if t != "null")
    return [(f["name"], _sql_type(f["type"])) for f in record["fields"]]


def create_tables(spark: SparkSession, names: TableNames) -> None:
    """Create the three tables and the runs table's constraints when missing."""
    run_struct = ", ".join(f"{n}: {t}" for n, t in run_fields())
    spark.sql(_ddl("model_runs.sql").format(name=names.runs))
    spark.sql(_ddl("model_run_events.sql").format(name=names.events, run_struct=run_struct))
    spark.sql(_ddl("model_run_rejects.sql").format(name=names.rejects))
    props = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {names.runs}").collect()}
    for constraint, expr in CHECKS.items():
        if f"delta.constraints.{constraint}" not in props:
            spark.sql(f"ALTER TABLE {names.runs} ADD CONSTRAINT {constraint} CHECK ({expr})")
