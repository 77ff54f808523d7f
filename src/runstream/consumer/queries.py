"""The seed's queries and the dashboard views, run against wherever ``model_runs`` lives.

The SQL lives in ``schemas/queries.sql`` and ``schemas/views.sql`` (copied into the wheel as
``runstream/_schemas``) written exactly as the seed writes it, against
``commodity.experiments.model_runs``. Here only names are substituted: the table's configured
name (a catalog name, or ``delta.`/lake/model_runs``` locally). So the text a user reads in the
design document is the text that runs.

``query_text`` also lets a caller ask for another commodity or row limit than the seed's
``'Coffee'`` and ``LIMIT 5``; with the defaults the executed text is the seed's, byte for byte,
apart from the table name. ``runstream.engines.named_query`` runs it on either engine.

Queries:

- ``best``: "Finding Best Models" (seed), top models by 14-day MAE that beat the baseline;
- ``history``: "Experiment History for Presentation" (seed), scale of experimentation by type;
- ``prune``: "Pruning Decision Support" (seed), models consistently worse than naive;
- ``production``: what runs in production (``is_production = TRUE``) for a commodity.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

from runstream.consumer.tables import TableNames
from runstream.contract import read_schema_file

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


SEED_SCHEMA = "commodity.experiments"
SEED_COMMODITY = "Coffee"
SEED_LIMIT = 5

_NAME_LINE = re.compile(r"^-- name: (?P<name>[a-z_]+)\s*$", re.MULTILINE)


@cache
def seed_queries() -> dict[str, str]:
    """Name -> query text as stored (the seed's table name, commodity and limit)."""
    text = read_schema_file("queries.sql")
    marks = list(_NAME_LINE.finditer(text))
    out: dict[str, str] = {}
    for mark in marks:
        body = text[mark.end() :].lstrip("\n")
        out[mark["name"]] = body[: body.index(";") + 1]
    return out


def _sql_string(value: str) -> str:
    """A Spark SQL string literal for ``value``."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _view_prefix(tables: TableNames) -> str:
    """Views sit beside a catalog table (its schema); path tables get session TEMP views,
    which have no schema (a path has none to hold a permanent view)."""
    if tables.lake is not None:
        return ""
    return tables.runs.rsplit(".", 1)[0] + "." if "." in tables.runs else ""


def _names(text: str, tables: TableNames) -> str:
    """Replace the seed's three-part names with the configured ones: the three tables, then
    every other name in the seed's schema, which is one of the views."""
    for seed_name, name in (
        (f"{SEED_SCHEMA}.model_runs", tables.runs),
        (f"{SEED_SCHEMA}.model_run_events", tables.events),
        (f"{SEED_SCHEMA}.model_run_rejects", tables.rejects),
    ):
        text = re.sub(rf"\b{re.escape(seed_name)}\b", name.replace("\\", "\\\\"), text)
    return re.sub(rf"\b{re.escape(SEED_SCHEMA)}\.", _view_prefix(tables), text)


def query_text(
    name: str,
    tables: TableNames,
    *,
    commodity: str = SEED_COMMODITY,
    limit: int = SEED_LIMIT,
) -> str:
    """The SQL that ``run_named_query`` runs for ``name``."""
    queries = seed_queries()
    if name not in queries:
        raise ValueError(f"unknown query {name!r}; choose one of {', '.join(queries)}")
    text = _names(queries[name], tables)
    if commodity != SEED_COMMODITY:
        text = text.replace(f"'{SEED_COMMODITY}'", _sql_string(commodity))
    if limit != SEED_LIMIT:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a whole number >= 0, got {limit!r}")
        text = re.sub(rf"\bLIMIT {SEED_LIMIT};", f"LIMIT {limit};", text)
    return text


def view_statements(tables: TableNames) -> list[str]:
    """``views.sql`` for these tables: catalog views beside model_runs, or TEMP views for
    path tables (a path has no schema to hold a permanent view)."""
    text = _names(read_schema_file("views.sql"), tables)
    if tables.lake is not None:
        text = text.replace("CREATE OR REPLACE VIEW ", "CREATE OR REPLACE TEMP VIEW ")
    code = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("--"))
    return [chunk.strip() for chunk in code.split(";") if chunk.strip()]


def view_names(tables: TableNames) -> list[str]:
    """Names of the views as ``create_views`` creates them, in the file's order."""
    found = []
    for sql in view_statements(tables):
        match = re.search(r"VIEW\s+(\S+)\s+AS", sql)
        if match:
            found.append(match[1])
    return found


def view_keys(tables: TableNames) -> list[str]:
    """The views' short names (``best_models``), in the order of ``view_names``."""
    return [name.rsplit(".", 1)[-1] for name in view_names(tables)]


def create_views(spark: SparkSession, tables: TableNames) -> list[str]:
    """Create (or replace) the dashboard views; returns their names."""
    for sql in view_statements(tables):
        spark.sql(sql)
    return view_names(tables)
