"""The light read path: the named queries answered from the Delta table by delta-rs, no JVM.

``runstream query`` on a laptop should take a fraction of a second and need neither Java nor
Spark's connector jars. ``deltalake`` (the ``query`` extra) opens the table's transaction log
itself and runs the same SQL text as Spark (``schemas/queries.sql``) with its ``QueryBuilder``
(DataFusion). The QueryBuilder, not ``to_pyarrow_dataset()``: on a table written by Spark, a
dataset filtered on a boolean column returned no rows (Spark writes no min/max statistics for
booleans, and the dataset then prunes every file), while the QueryBuilder reads them right.

Rows come back as Spark returns them, so both engines print the same answer: timestamps as
naive UTC datetimes (the job's session time zone is UTC), maps as dicts.

Catalog tables (``RUNSTREAM_TABLE``, Unity Catalog) are Spark's: this path reads tables named
by a path or an object-store URI that delta-rs supports.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from runstream.consumer.queries import (
    SEED_COMMODITY,
    SEED_LIMIT,
    query_text,
    seed_queries,
    view_statements,
)
from runstream.consumer.tables import RUNS, TableNames
from runstream.errors import SetupError, TableNotFoundError

if TYPE_CHECKING:
    from deltalake import DeltaTable

# The names the SQL text uses on this path: the table as registered with the QueryBuilder.
_REGISTERED = TableNames.in_catalog(RUNS)


def available() -> bool:
    """True when ``deltalake`` is installed (the ``query`` extra)."""
    try:
        import deltalake  # noqa: F401
    except ImportError:
        return False
    return True


def open_runs(tables: TableNames) -> DeltaTable:
    """The runs table of a path lake, read by delta-rs."""
    try:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError as DeltaNotFound
    except ImportError as exc:
        raise SetupError(
            "the light read path needs deltalake: pip install 'runstream[query]', "
            "or use --engine spark"
        ) from exc
    if tables.lake is None:
        raise SetupError(
            f"{tables.runs} is a catalog table, which only Spark reads; use --engine spark"
        )
    location = tables.runs.removeprefix("delta.`").removesuffix("`")  # the path or URI
    try:
        return DeltaTable(location)
    except DeltaNotFound:
        raise TableNotFoundError(
            f"no model_runs table at {location} yet; run `runstream consume --once` (or "
            "`make demo`) to create it, or point RUNSTREAM_LAKE (--lake) at the lake that holds it"
        ) from None


def _with_views(sql: str) -> str:
    """``sql`` with each view it reads inlined as a subquery (the QueryBuilder has no views)."""
    for statement in view_statements(_REGISTERED):
        match = re.match(r"CREATE OR REPLACE VIEW (\S+) AS\s+(.*)", statement, re.DOTALL)
        if match and re.search(rf"\b{re.escape(match[1])}\b", sql):
            sql = re.sub(rf"\b{re.escape(match[1])}\b", f"({match[2]}) AS {match[1]}", sql)
    return sql


def _plain(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    if isinstance(value, list) and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return dict(value)  # a MAP column
    return value


def sql_rows(table: DeltaTable, sql: str) -> list[dict[str, Any]]:
    """Run ``sql`` (which names the table ``model_runs``) and return its rows as dicts."""
    from deltalake import QueryBuilder

    result = QueryBuilder().register(RUNS, table).execute(_with_views(sql)).read_all()
    columns = {name: result.column(name).to_pylist() for name in result.column_names}
    return [
        {name: _plain(values[i]) for name, values in columns.items()}
        for i in range(result.num_rows)
    ]


def run_query(
    tables: TableNames,
    name: str,
    *,
    commodity: str = SEED_COMMODITY,
    limit: int = SEED_LIMIT,
) -> list[dict[str, Any]]:
    """One named query (or ``all``) on the light path; the same rows as Spark's ``run_query``."""
    table = open_runs(tables)
    if name == "all":
        return [
            {"query": each, **row}
            for each in seed_queries()
            for row in sql_rows(
                table, query_text(each, _REGISTERED, commodity=commodity, limit=limit)
            )
        ]
    return sql_rows(table, query_text(name, _REGISTERED, commodity=commodity, limit=limit))
