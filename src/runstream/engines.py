"""Two engines that answer the same questions from the tables: light (delta-rs) and Spark.

The query verbs (``query``, ``versions``, ``show``) run one SQL text on either engine, with
the tables named ``model_runs``, ``model_run_events`` and ``model_run_rejects`` and the views
of ``schemas/views.sql`` inlined as subqueries, so both read exactly the same thing:

- ``LightEngine``: delta-rs (``deltalake``, the ``query`` extra) opens each table's
  transaction log itself and runs the SQL with its ``QueryBuilder`` (DataFusion). No JVM: a
  laptop answers in a fraction of a second. Not ``to_pyarrow_dataset()``: on a table written
  by Spark, a dataset filtered on a boolean column returned no rows (Spark writes no min/max
  statistics for booleans, and the dataset then prunes every file); the QueryBuilder reads
  them right. Path tables and the object-store URIs delta-rs supports only.
- ``SparkEngine``: a SparkSession, for catalog tables (Unity Catalog) and as the reference.

Rows come back alike from both: timestamps as naive UTC datetimes (the job's session time
zone is UTC), maps as dicts.

Time travel: an engine may be pinned to a version of ``model_runs`` (``as_of``); a timestamp
or ``run:EXPERIMENT_ID`` is resolved to a version first (``resolve_as_of``), the same way on
both engines, so ``--as-of`` means the same thing whichever engine answers.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from runstream.consumer.queries import (
    SEED_COMMODITY,
    SEED_LIMIT,
    query_text,
    seed_queries,
    view_statements,
)
from runstream.consumer.tables import EVENTS, REJECTS, RUN_COUNTS, RUNS, TableNames
from runstream.contract import RUN_ANNOTATED, RUN_PROMOTED, RUN_RECORDED
from runstream.errors import InputError, SetupError, TableNotFoundError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# The names the SQL text uses with either engine.
NAMES = TableNames.in_catalog(RUNS)


class Engine(Protocol):
    """Runs SQL that names the tables ``model_runs``, ``model_run_events``,
    ``model_run_rejects``; ``model_runs`` as of the engine's pinned version, if any."""

    tables: TableNames
    as_of: int | None

    def sql(self, text: str) -> list[dict[str, Any]]: ...

    def pinned(self, version: int | None) -> Engine: ...

    def history(self) -> list[dict[str, Any]]: ...


def with_views(sql: str) -> str:
    """``sql`` with each view it reads inlined as a subquery (delta-rs has no views). A view
    may read views defined before it, so the file is walked from its end."""
    for statement in reversed(view_statements(NAMES)):
        match = re.match(r"CREATE OR REPLACE VIEW (\S+) AS\s+(.*)", statement, re.DOTALL)
        if match:
            sql = _inline(sql, match[1], match[2])
    return sql


def _inline(sql: str, name: str, body: str) -> str:
    """Each reference to view ``name`` in ``sql`` replaced by ``(body)``, under the alias the
    reference gave it, else under the view's name."""

    def subquery(reference: re.Match[str]) -> str:
        return f"({body}){reference[1] or f' AS {name}'}"

    return re.sub(rf"\b{re.escape(name)}\b(\s+AS\s+\w+)?", subquery, sql)


def plain(value: Any) -> Any:
    """A value as Spark returns it: aware datetimes as naive UTC, map entries (a list of
    pairs from Arrow) as a dict, inside structs too."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, tuple) and len(v) == 2 for v in value)
    ):
        return {k: plain(v) for k, v in value}
    return value


def _location(name: str) -> str:
    return name.removeprefix("delta.`").removesuffix("`")


def _operation_counts(entry: dict[str, Any]) -> dict[str, Any]:
    """A history entry as ``versions`` shows it: when, which operation, what it did to rows.

    The job's own commits say how many rows they inserted and updated in their
    ``userMetadata`` (``RUN_COUNTS``): an append or a rewrite of buckets cannot tell that from
    Delta's metrics. Otherwise a MERGE (the job before buckets) counts inserted and updated
    rows; a WRITE (``rebuild``'s INSERT OVERWRITE) rewrites every row; DDL (CREATE, ADD
    CONSTRAINT) and OPTIMIZE change none.
    """
    metrics = {k: int(v) for k, v in (entry.get("operationMetrics") or {}).items()
               if str(v).isdigit()}  # fmt: skip
    operation = entry.get("operation")
    inserted = updated = 0
    counts = _run_counts(entry.get("userMetadata"))
    if counts is not None:
        inserted, updated = counts
    elif operation == "MERGE":
        inserted = metrics.get("numTargetRowsInserted", 0)
        updated = metrics.get("numTargetRowsUpdated", 0)
    elif operation == "WRITE":
        inserted = metrics.get("numOutputRows", 0)
    return {
        "version": int(entry["version"]),
        "timestamp": plain(entry["timestamp"]),
        "operation": operation,
        "rows_inserted": inserted,
        "rows_updated": updated,
    }


def _run_counts(metadata: Any) -> tuple[int, int] | None:
    """The rows a job commit inserted and updated, from its ``userMetadata``, if it says."""
    try:
        counts = json.loads(metadata)[RUN_COUNTS] if metadata else None
        return (int(counts["inserted"]), int(counts["updated"])) if counts else None
    except (ValueError, TypeError, KeyError):
        return None  # someone else's metadata


class LightEngine:
    """delta-rs over path tables; see the module docstring."""

    def __init__(self, tables: TableNames, as_of: int | None = None) -> None:
        if tables.lake is None:
            raise SetupError(
                f"{tables.runs} is a catalog table, which only Spark reads; use --engine spark"
            )
        self.tables = tables
        self.as_of = as_of
        self._opened: dict[tuple[str, int | None], Any] = {}

    @staticmethod
    def available() -> bool:
        """True when ``deltalake`` is installed (the ``query`` extra)."""
        try:
            import deltalake  # noqa: F401
        except ImportError:
            return False
        return True

    def pinned(self, version: int | None) -> LightEngine:
        return LightEngine(self.tables, version)

    def _open(self, name: str, version: int | None = None) -> Any:
        try:
            from deltalake import DeltaTable
            from deltalake.exceptions import TableNotFoundError as DeltaNotFound
        except ImportError as exc:
            raise SetupError(
                "the light engine needs deltalake: pip install 'runstream[query]', "
                "or use --engine spark"
            ) from exc
        key = (name, version)
        if key not in self._opened:
            location = _location(name)
            try:
                table = DeltaTable(location)
            except DeltaNotFound:
                raise TableNotFoundError(
                    f"no table at {location} yet; run `runstream consume --once` (or `make "
                    "demo`) to create it, or point RUNSTREAM_LAKE (--lake) at the lake"
                ) from None
            if version is not None:
                try:
                    table.load_as_version(version)
                except Exception as exc:  # delta-rs raises several kinds for a bad version
                    raise InputError(
                        f"model_runs has no version {version} (it is at version "
                        f"{DeltaTable(location).version()}); see `runstream versions`"
                    ) from exc
            self._opened[key] = table
        elif version is None:
            self._opened[key].update_incremental()  # an engine that lives on sees new commits
        return self._opened[key]

    def sql(self, text: str) -> list[dict[str, Any]]:
        from deltalake import QueryBuilder

        text = with_views(text)
        builder = QueryBuilder()
        for short, name in ((RUNS, self.tables.runs), (EVENTS, self.tables.events),
                            (REJECTS, self.tables.rejects)):  # fmt: skip
            if re.search(rf"\b{short}\b", text):
                builder = builder.register(
                    short, self._open(name, self.as_of if short == RUNS else None)
                )
        result = builder.execute(text).read_all()
        columns = {name: result.column(name).to_pylist() for name in result.column_names}
        return [
            {name: plain(values[i]) for name, values in columns.items()}
            for i in range(result.num_rows)
        ]

    def history(self) -> list[dict[str, Any]]:
        entries = self._open(self.tables.runs).history()
        out = []
        for entry in entries:
            stamp = datetime.fromtimestamp(entry["timestamp"] / 1000, timezone.utc)
            out.append(_operation_counts({**entry, "timestamp": stamp}))
        return sorted(out, key=lambda e: e["version"])


class SparkEngine:
    """A SparkSession over path or catalog tables; see the module docstring."""

    def __init__(self, spark: SparkSession, tables: TableNames, as_of: int | None = None) -> None:
        self.spark = spark
        self.tables = tables
        self.as_of = as_of

    def pinned(self, version: int | None) -> SparkEngine:
        return SparkEngine(self.spark, self.tables, version)

    def sql(self, text: str) -> list[dict[str, Any]]:
        runs = self.tables.runs
        if self.as_of is not None:
            runs = f"{runs} VERSION AS OF {int(self.as_of)}"
        text = with_views(text)
        for short, name in ((RUNS, runs), (EVENTS, self.tables.events),
                            (REJECTS, self.tables.rejects)):  # fmt: skip
            text = re.sub(rf"(?<![.`\w]){short}\b", name.replace("\\", "\\\\"), text)
        return [row.asDict(recursive=True) for row in self.spark.sql(text).collect()]

    def history(self) -> list[dict[str, Any]]:
        """From the commits' own ``commitInfo`` in ``_delta_log``, as delta-rs reads it.

        Not ``DESCRIBE HISTORY``: its timestamps are the log files' modification times, which
        differ from the commit's own time by up to a second or so, and ``--as-of TIME`` must
        pick the same version on both engines.
        """
        from pyspark.sql import functions as F
        from pyspark.sql.types import StructType

        detail = self.spark.sql(f"DESCRIBE DETAIL {self.tables.runs}").first()
        location = str(detail["location"]) if detail is not None else ""
        commits = self.spark.read.json(location.rstrip("/") + "/_delta_log/*.json")
        info = commits.schema["commitInfo"].dataType
        assert isinstance(info, StructType)
        metadata = (
            F.col("commitInfo.userMetadata") if "userMetadata" in info.fieldNames()
            else F.lit(None)
        )  # fmt: skip
        log = (
            commits.where(F.col("commitInfo").isNotNull())
            .select(
                F.regexp_extract(F.input_file_name(), r"(\d+)\.json$", 1).cast("long").alias("v"),
                F.col("commitInfo.timestamp").alias("ms"),
                F.col("commitInfo.operation").alias("operation"),
                F.to_json("commitInfo.operationMetrics").alias("metrics"),
                metadata.alias("user_metadata"),
            )
            .collect()
        )
        out = []
        for row in log:
            stamp = datetime.fromtimestamp(row["ms"] / 1000, timezone.utc)
            metrics = json.loads(row["metrics"]) if row["metrics"] else {}
            entry = {"version": row["v"], "timestamp": stamp, "operation": row["operation"],
                     "operationMetrics": metrics, "userMetadata": row["user_metadata"]}  # fmt: skip
            out.append(_operation_counts(entry))
        return sorted(out, key=lambda e: e["version"])


def resolve_as_of(engine: Engine, as_of: str | None) -> int | None:
    """``--as-of``: a version number, an ISO timestamp (the last version committed at or
    before it), or ``run:EXPERIMENT_ID`` (the version in which that run got its current row)."""
    if as_of is None:
        return None
    text = as_of.strip()
    if text.isdigit():
        return int(text)
    history = engine.history()
    if text.startswith("run:"):
        return _version_of_run(engine, text[4:].strip(), [e["version"] for e in history])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"--as-of {as_of!r} is not a version, a timestamp or run:ID; e.g. --as-of 12, "
            "--as-of 2025-01-06T09:00:00 (UTC) or --as-of run:<experiment_id>"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    before = [e["version"] for e in history if e["timestamp"] <= moment]
    if not before:
        first = history[0]["timestamp"] if history else "never"
        raise InputError(f"model_runs did not exist at {moment} (its first version: {first})")
    return int(max(before))


def _version_of_run(engine: Engine, experiment_id: str, versions: list[int]) -> int:
    """The first version whose row for ``experiment_id`` is its current one (binary search:
    once a run's row reaches its current state it keeps it in every later version)."""
    quoted = experiment_id.replace("'", "''")
    probe = (
        "SELECT _rs_last_event_id, _rs_event_count FROM model_runs "
        f"WHERE experiment_id = '{quoted}'"
    )
    current = engine.pinned(None).sql(probe)
    if not current:
        raise InputError(
            f"run:{experiment_id} is not in model_runs; give an experiment_id from the table"
        )
    low, high = 0, len(versions) - 1
    while low < high:
        middle = (low + high) // 2
        if engine.pinned(versions[middle]).sql(probe) == current:
            high = middle
        else:
            low = middle + 1
    return versions[low]


def named_query(
    engine: Engine,
    name: str,
    *,
    commodity: str = SEED_COMMODITY,
    limit: int = SEED_LIMIT,
) -> list[dict[str, Any]]:
    """One of ``schemas/queries.sql`` (or ``all``: each row then carries its query's name)."""
    if name == "all":
        return [
            {"query": each, **row}
            for each in seed_queries()
            for row in named_query(engine, each, commodity=commodity, limit=limit)
        ]
    return engine.sql(query_text(name, NAMES, commodity=commodity, limit=limit))


def versions(engine: Engine) -> list[dict[str, Any]]:
    """``model_runs``' versions, oldest first: time, operation, rows inserted and updated."""
    return engine.history()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _changes(event: dict[str, Any], previous_run: dict[str, Any] | None) -> str:
    """What an event changed, in words: the fields a re-recording changed, a promotion's or
    an annotation's new value."""
    kind = event["event_type"]
    if kind == RUN_PROMOTED:
        return f"is_production -> {(event.get('promotion') or {}).get('is_production')}"
    if kind == RUN_ANNOTATED:
        return f"notes -> {(event.get('annotation') or {}).get('notes')!r}"
    run = event.get("run") or {}
    if previous_run is None:
        return "recorded"
    changed = [k for k in run if run.get(k) != previous_run.get(k)]
    return "re-recorded: " + (", ".join(changed) if changed else "no field changed")


def run_story(engine: Engine, experiment_id: str) -> dict[str, Any]:
    """``runstream show``: a run's current row, every event of its history from the log in
    the fold's order (each event once: the log keeps each event_id once), and the quarantined
    records whose Kafka key was its id."""
    key = _literal(experiment_id)
    rows = engine.sql(f"SELECT * FROM model_runs WHERE experiment_id = {key}")
    events = engine.sql(
        "SELECT event_time, event_type, source, producer, event_id, run, promotion, "
        "annotation, kafka_topic, kafka_partition, kafka_offset FROM model_run_events "
        f"WHERE experiment_id = {key} ORDER BY event_time, event_id"
    )
    history = []
    previous_run: dict[str, Any] | None = None
    for event in events:
        history.append({
            "event_time": event["event_time"], "event_type": event["event_type"],
            "source": event["source"], "host": (event.get("producer") or {}).get("host"),
            "event_id": event["event_id"], "change": _changes(event, previous_run),
        })  # fmt: skip
        if event["event_type"] == RUN_RECORDED:
            previous_run = event.get("run") or {}
    rejects = engine.sql(
        "SELECT rejected_at, kafka_topic, kafka_partition, kafka_offset, reason "
        f"FROM model_run_rejects WHERE key = X'{experiment_id.encode().hex()}' "
        "ORDER BY rejected_at, kafka_topic, kafka_partition, kafka_offset"
    )
    return {"row": rows[0] if rows else None, "events": history, "rejects": rejects}
