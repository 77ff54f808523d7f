"""The run's fields: one table that every check of a run derives from.

The newest event schema gives each field its name, order and Avro type; this module adds what
an Avro schema cannot say, its rule, and derives the rest:

=====================  ==========================================================================
name, Avro type        the ``run`` record of the newest ``schemas/model_run_event.v*.avsc``
SQL type               from the Avro type (``timestamp-micros`` -> TIMESTAMP, map -> MAP, ...)
required               the Avro type is not a union with null
rule                   ``RULES`` below: what a value must be
=====================  ==========================================================================

From this table come the producer's validation (``runstream.contract.validation``, one checker
per rule), the consumer's decode checks and the ``model_runs`` DDL: its column list, its NOT
NULLs and its CHECK constraints (``sql_checks``). Add a field to the schema and to ``RULES``,
and every one of those follows.

The table enforces the hard invariants (non-negative, fractions, finite numbers, positive
horizon, ordered training window); plausibility that depends on the time of writing or on a
setting (the commodity list, dates near now, text lengths) is the producer's to check, so a
replay of old events never quarantines what was valid when it was written.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from runstream.contract.wire import latest
from runstream.errors import SchemaError


class Rule(str, enum.Enum):
    """What a field's value must be. Each rule has one checker in ``validation``."""

    NAME = "name"  # required text: trimmed, 1..256 characters, no control characters
    COMMODITY = "commodity"  # a NAME from the configured commodity list
    TEXT = "text"  # free text up to 64 KiB; no control characters but tab and line breaks
    TIMESTAMP = "timestamp"  # an instant between 1970-01-01 and one day after now
    TRAINING_DATE = "training_date"  # a date from 1900-01-01 to the run's date
    HORIZON = "horizon"  # whole days, 1 to 100,000
    NON_NEGATIVE = "non_negative"  # a finite number >= 0
    FRACTION = "fraction"  # a finite number in [0, 1]
    FINITE = "finite"  # any finite number
    FLAG = "flag"  # True or False
    SETTINGS = "settings"  # name -> text (numbers, lists and tuples are rendered as text)
    FLAGS = "flags"  # name -> True or False


# One entry per field of the run record, in the schema's order (a test holds them in step).
RULES: dict[str, Rule] = {
    "model_name": Rule.NAME,
    "model_version": Rule.NAME,
    "run_timestamp": Rule.TIMESTAMP,
    "model_type": Rule.NAME,
    "hyperparameters": Rule.SETTINGS,
    "feature_config": Rule.FLAGS,
    "data_version": Rule.TEXT,
    "training_start_date": Rule.TRAINING_DATE,
    "training_end_date": Rule.TRAINING_DATE,
    "forecast_horizon_days": Rule.HORIZON,
    "commodity": Rule.COMMODITY,
    "mae_1day": Rule.NON_NEGATIVE,
    "mae_7day": Rule.NON_NEGATIVE,
    "mae_14day": Rule.NON_NEGATIVE,
    "rmse_14day": Rule.NON_NEGATIVE,
    "mape_14day": Rule.NON_NEGATIVE,
    "directional_accuracy": Rule.FRACTION,
    "dm_test_vs_naive": Rule.FINITE,
    "dm_pvalue": Rule.FRACTION,
    "beats_baseline": Rule.FLAG,
    "execution_time_seconds": Rule.NON_NEGATIVE,
    "hardware_config": Rule.TEXT,
    "databricks_cluster_id": Rule.TEXT,
    "cost_estimate_usd": Rule.NON_NEGATIVE,
    "model_path": Rule.TEXT,
    "dashboard_url": Rule.TEXT,
    "run_by": Rule.TEXT,
    "notes": Rule.TEXT,
    "is_production": Rule.FLAG,
    "tags": Rule.SETTINGS,  # v3: the registry's experiment_tags
}

# What the fold writes when no event states a value (so the column can be NOT NULL).
FOLD_DEFAULTS: dict[str, str] = {"is_production": "FALSE"}

# Python source shown in "missing" and "empty" messages, so the fix is one copy-paste away.
EXAMPLES: dict[str, str] = {
    "model_name": "'sarimax_auto_weather_v1'",
    "model_version": "'v1'",
    "run_timestamp": "datetime.now()",
    "model_type": "'SARIMAX'",
    "training_start_date": "'2022-01-01'",
    "training_end_date": "'2024-12-31'",
    "forecast_horizon_days": "14",
    "commodity": "'Coffee'",
}

# Checks across fields, as (name, SQL that holds for a valid row, message when it does not).
# The producer checks the same (with a did-you-mean), and more (see validation).
ROW_CHECKS: tuple[tuple[str, str, str], ...] = (
    (
        "training_window_ordered",
        "training_start_date <= training_end_date",
        "training_start_date is after training_end_date",
    ),
)

_FINITE = "NOT isnan({c}) AND abs({c}) <> CAST('Infinity' AS DOUBLE)"
# Rule -> (SQL that holds for a valid non-null value, message when it does not).
_SQL: dict[Rule, tuple[str, str]] = {
    Rule.NAME: ("trim({c}) <> ''", "is empty"),
    Rule.COMMODITY: ("trim({c}) <> ''", "is empty"),
    Rule.HORIZON: ("{c} > 0", "must be positive"),
    Rule.NON_NEGATIVE: ("{c} >= 0", "is negative"),
    Rule.FRACTION: ("{c} >= 0 AND {c} <= 1", "is outside [0, 1]"),
}
# Rules the table enforces with a CHECK constraint (the rest are checked at decode only).
_CONSTRAINED = (Rule.HORIZON, Rule.NON_NEGATIVE, Rule.FRACTION)
# A check's name is the field and this word (the rule's own name where it reads well).
_CHECK_WORD = {Rule.HORIZON: "positive"}

_AVRO_TO_SQL = {"string": "STRING", "double": "DOUBLE", "boolean": "BOOLEAN", "int": "INT",
                "long": "BIGINT"}  # fmt: skip


@dataclass(frozen=True)
class RunField:
    """One column of ``model_runs`` that a run event carries."""

    name: str
    avro_type: Any
    sql_type: str
    required: bool
    rule: Rule

    @property
    def not_null(self) -> bool:
        """NOT NULL in the table: required, or filled by the fold when no event states it."""
        return self.required or self.name in FOLD_DEFAULTS

    @property
    def example(self) -> str:
        return EXAMPLES.get(self.name, "...")


def sql_type(avro_type: Any) -> str:
    """The Spark SQL type of an Avro type (the nullable branch of a union)."""
    if isinstance(avro_type, list):
        return sql_type(next(t for t in avro_type if t != "null"))
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "date":
            return "DATE"
        if logical in ("timestamp-micros", "timestamp-millis"):
            return "TIMESTAMP"
        if avro_type["type"] == "map":
            return f"MAP<STRING, {sql_type(avro_type['values'])}>"
        return sql_type(avro_type["type"])
    return _AVRO_TO_SQL[avro_type]


@cache
def run_fields() -> tuple[RunField, ...]:
    """The table: every field of the newest schema's ``run`` record, in order, with its rule."""
    schema = json.loads(latest().json)
    run = next(f for f in schema["fields"] if f["name"] == "run")
    record = next(t for t in run["type"] if isinstance(t, dict))
    names = [f["name"] for f in record["fields"]]
    if names != list(RULES):
        raise SchemaError(
            "runstream.contract.fields.RULES must list the newest schema's run fields in order; "
            f"only in the schema: {sorted(set(names) - set(RULES))}, "
            f"only in RULES: {sorted(set(RULES) - set(names))}"
        )
    return tuple(
        RunField(
            name=f["name"],
            avro_type=f["type"],
            sql_type=sql_type(f["type"]),
            required=not isinstance(f["type"], list),
            rule=RULES[f["name"]],
        )
        for f in record["fields"]
    )


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in run_fields())


def ddl_columns() -> str:
    """The run's columns for ``CREATE TABLE``: ``name TYPE [NOT NULL]``, one per line."""
    return ",\n  ".join(
        f"{f.name} {f.sql_type}{' NOT NULL' if f.not_null else ''}" for f in run_fields()
    )


def struct_type() -> str:
    """The run record as a Spark SQL struct body (``name: TYPE, ...``)."""
    return ", ".join(f"{f.name}: {f.sql_type}" for f in run_fields())


def sql_checks(prefix: str = "") -> list[tuple[str, str, str]]:
    """(name, SQL that holds for a valid run, message when it does not) for every field rule
    and row check, with each column read as ``prefix + name`` (``run.`` in the decoder).

    A null optional value passes; whether a required value is present is the NOT NULL's job.
    """
    checks = []
    for f in run_fields():
        c = f"{prefix}{f.name}"
        if f.sql_type == "DOUBLE":
            checks.append((f"{f.name}_finite", _FINITE.format(c=c), f"{c} is not finite"))
        if f.rule in _SQL:
            template, message = _SQL[f.rule]
            checks.append((_check_name(f), template.format(c=c), f"{c} {message}"))
    column = re.compile(r"\b(" + "|".join(field_names()) + r")\b")
    for name, sql, message in ROW_CHECKS:
        checks.append((name, column.sub(prefix + r"\1", sql), column.sub(prefix + r"\1", message)))
    return checks


def _check_name(f: RunField) -> str:
    return f"{f.name}_{_CHECK_WORD.get(f.rule, f.rule.value)}"


def check_constraints() -> dict[str, str]:
    """CHECK constraints of ``model_runs``: the numeric rules and the row checks.

    The job quarantines such rows first, so a CHECK is a backstop that never stops the stream.
    """
    constrained = {_check_name(f): f for f in run_fields() if f.rule in _CONSTRAINED}
    out: dict[str, str] = {}
    for name, sql, _ in sql_checks():
        field = constrained.get(name)
        if field is not None:
            out[name] = sql if field.required else f"{field.name} IS NULL OR ({sql})"
        elif name in {n for n, _, _ in ROW_CHECKS}:
            out[name] = sql
    return out
