"""The three Delta tables: where they live, and their idempotent DDL (from ``schemas/*.sql``,
with the run's columns, NOT NULLs and CHECK constraints from ``runstream.contract.fields``).

CHECK constraints are the backstop behind the job's own checks, which quarantine such rows
first (a failing CHECK would stop the stream).

Locally each table is a path under the lake folder (``delta.`/lake/model_runs```). The lake
may also be a URI (``file:///...``, ``s3a://bucket/lake``, ``abfss://...``, ``dbfs:/...``),
which Spark resolves and which is used exactly as given: on a cluster the executors, not this
process, read and write it, so it must not be rewritten as a path relative to this process's
working directory. Given a catalog name for ``model_runs`` (``commodity.experiments.model_runs``
on Databricks), the event log and the quarantine sit beside it in the same schema.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runstream import contract
from runstream.contract import fields
from runstream.errors import SchemaError, TableNotFoundError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

RUNS = "model_runs"
EVENTS = "model_run_events"
REJECTS = "model_run_rejects"

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:")  # a scheme of 2+ letters, so never ``C:``


def is_uri(location: str | os.PathLike[str]) -> bool:
    """True for ``scheme:...`` locations (``file:``, ``s3a:``, ``abfss:``, ``dbfs:``)."""
    return bool(_URI.match(os.fspath(location)))


def location(value: str | os.PathLike[str]) -> str:
    """A lake or checkpoint location as Spark should get it: a URI exactly as given, a local
    path absolute (``~`` expanded), so nothing depends on the driver's working directory."""
    text = os.fspath(value)
    return text if is_uri(text) else str(Path(text).expanduser().absolute())


def child(parent: str, name: str) -> str:
    """``parent``/``name`` for a path or a URI (``Path`` would fold ``file:///x`` into
    ``file:/x``)."""
    return parent.rstrip("/") + "/" + name


def local_path(location: str) -> Path | None:
    """The local folder a location names (a path, or a ``file:`` URI), else None."""
    if not is_uri(location):
        return Path(location)
    if location.startswith("file:"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(location).path))
    return None


@dataclass(frozen=True)
class TableNames:
    """SQL names of the three tables."""

    runs: str
    events: str
    rejects: str
    lake: str | None = None  # the location of path tables (see ``location``); None: catalog

    @classmethod
    def at_path(cls, lake: str | os.PathLike[str]) -> TableNames:
        """Path tables under ``lake``: a local folder (made absolute) or a URI (as given)."""
        root = location(lake)
        runs, events, rejects = (f"delta.`{child(root, n)}`" for n in (RUNS, EVENTS, REJECTS))
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

    A path table on local disk is checked there, before any JVM starts, so the answer takes
    milliseconds; a catalog table needs ``spark``; a remote lake (``s3a://``...) is not checked
    (the job creates its tables, and a reader's own error names the path).
    """
    if names.lake is not None:
        folder = local_path(names.lake)
        if folder is None:
            return
        path = folder / RUNS
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
    """Create the three tables and the runs table's constraints when missing, and give tables
    an older version created the columns newer schema versions added."""
    for statement in ddl(names):
        spark.sql(statement)
    add_new_columns(spark, names)
    props = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {names.runs}").collect()}
    for constraint, expr in fields.check_constraints().items():
        if f"delta.constraints.{constraint}" not in props:
            spark.sql(f"ALTER TABLE {names.runs} ADD CONSTRAINT {constraint} CHECK ({expr})")


def add_new_columns(spark: SparkSession, names: TableNames) -> list[str]:
    """Add the run fields a table lacks: a ``model_runs`` column, a field of the event log's
    ``run`` struct, each where the DDL would put it (``AFTER`` its predecessor). Schema
    versions only add optional fields, so old rows read them as null: no rebuild, and no row
    rewritten. Returns what was added, as ``"<table>: <column>"``."""
    from pyspark.sql.types import StructType

    added = []
    targets = (
        (names.runs, "", spark.table(names.runs).schema, "experiment_id"),
        (names.events, "run.", spark.table(names.events).schema["run"].dataType, None),
    )
    for table, prefix, schema, previous in targets:
        assert isinstance(schema, StructType)
        present = set(schema.fieldNames())
        for f in fields.run_fields():
            if f.name not in present:
                if f.required:
                    raise SchemaError(
                        f"{table} lacks the required column {prefix}{f.name}; a schema version "
                        "may only add optional fields"
                    )
                place = f" AFTER {previous}" if previous else " FIRST"
                spark.sql(f"ALTER TABLE {table} ADD COLUMNS ({prefix}{f.name} {f.sql_type}{place})")
                added.append(f"{table}: {prefix}{f.name}")
                log.info("added column %s%s %s to %s", prefix, f.name, f.sql_type, table)
            previous = f.name
    return added
