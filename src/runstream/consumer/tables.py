"""The three Delta tables: where they live, and their idempotent DDL (from ``schemas/*.sql``,
with the run's columns, NOT NULLs and CHECK constraints from ``runstream.contract.fields``).

CHECK constraints are the backstop behind the job's own checks, which quarantine such rows
first (a failing CHECK would stop the stream).

Locally each table is a path under the lake folder (``delta.`/lake/model_runs```); given a
catalog name for ``model_runs`` (``commodity.experiments.model_runs`` on Databricks), the event
log and the quarantine sit beside it in the same schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runstream import contract
from runstream.contract import fields
from runstream.errors import TableNotFoundError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

RUNS = "model_runs"
EVENTS = "model_run_events"
REJECTS = "model_run_rejects"


@dataclass(frozen=True)
class TableNames:
    """SQL names of the three tables."""

    runs: str
    events: str
    rejects: str
    lake: Path | None = None  # the folder of path tables; None for catalog tables

    @classmethod
    def at_path(cls, lake: str | Path) -> TableNames:
        root = Path(lake).expanduser().absolute()
        runs, events, rejects = (f"delta.`{root / n}`" for n in (RUNS, EVENTS, REJECTS))
        return cls(runs, events, rejects, lake=root)

    @classmethod
    def in_catalog(cls, runs_name: str) -> TableNames:
        prefix = runs_name.rsplit(".", 1)[0] + "." if "." in runs_name else ""
        return cls(runs_name, f"{prefix}{EVENTS}", f"{prefix}{REJECTS}")


def ddl(names: TableNames) -> list[str]:
    """The three CREATE TABLE statements for ``names``, filled in from the run's field table."""
    columns = fields.ddl_columns()
    return [
        contract.read_schema_file("model_runs.sql").format(name=names.runs, run_columns=columns),
        contract.read_schema_file("model_run_events.sql").format(
            name=names.events, run_struct=fields.struct_type()
        ),
        contract.read_schema_file("model_run_rejects.sql").format(name=names.rejects),
    ]


def require_runs_table(names: TableNames, spark: SparkSession | None = None) -> None:
    """Raise TableNotFoundError, saying what to run, when ``model_runs`` does not exist yet.

    A path table is checked on disk, before any JVM starts, so the answer takes milliseconds;
    a catalog table needs ``spark``.
    """
    if names.lake is not None:
        path = names.lake / RUNS
        if (path / "_delta_log").is_dir():
            return
        where = f"at {path}"
        fix = "or point RUNSTREAM_LAKE (--lake) at the lake that holds it"
    else:
        if spark is None or spark.catalog.tableExists(names.runs):
            return
        where = f"named {names.runs}"
        fix = "or set RUNSTREAM_TABLE (--table) to the right name"
    raise TableNotFoundError(
        f"no model_runs table {where} yet; run `runstream consume --once` (or `make demo`) "
        f"to create it, {fix}"
    )


def create_tables(spark: SparkSession, names: TableNames) -> None:
    """Create the three tables and the runs table's constraints when missing."""
    for statement in ddl(names):
        spark.sql(statement)
    props = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {names.runs}").collect()}
    for constraint, expr in fields.check_constraints().items():
        if f"delta.constraints.{constraint}" not in props:
            spark.sql(f"ALTER TABLE {names.runs} ADD CONSTRAINT {constraint} CHECK ({expr})")
