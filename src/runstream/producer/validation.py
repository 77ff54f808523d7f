"""Turn a user's run (the seed's dict, or keyword arguments) into a valid event payload.

Everything is checked before anything is written, and every problem is reported at once, each
naming the field, the value and the fix.

Time rule: a naive ``datetime`` (what ``datetime.now()`` returns) is read as the emitting
machine's local time; an aware one keeps its zone. Both are stored as UTC instants.
Dates accept ``date`` objects, ``datetime`` objects (their calendar date) and ISO strings
(``"2022-01-01"``).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

MAX_NAME_LEN = 256
MAX_TEXT_LEN = 64 * 1024
MAX_MAP_ENTRIES = 1000
MAX_EXPERIMENT_ID_LEN = 128

Checker = Callable[[str, Any], tuple[Any, str | None]]


def _type_name(value: Any) -> str:
    return type(value).__name__


def _name(field: str, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"{field} must be a string, got {_type_name(value)} {value!r}"
    stripped = value.strip()
    if not stripped:
        return None, f"{field} must not be empty; give it a name such as 'sarimax_auto_weather_v1'"
    if len(stripped) > MAX_NAME_LEN:
        return None, f"{field} must be at most {MAX_NAME_LEN} characters, got {len(stripped)}"
    return stripped, None


def _text(field: str, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"{field} must be a string or None, got {_type_name(value)} {value!r}"
    if len(value) > MAX_TEXT_LEN:
        return None, f"{field} must be at most {MAX_TEXT_LEN} characters, got {len(value)}"
    return value, None


def to_utc(value: datetime) -> datetime:
    """Apply the time rule: naive means local time of this machine."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.astimezone()  # interprets naive as local time
    return value.astimezone(timezone.utc)


def _timestamp(field: str, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None, (
                f"{field} must be a datetime or an ISO-8601 string like "
                f"'2024-12-31T08:30:00', got {value!r}"
            )
    if not isinstance(value, datetime):
        return None, f"{field} must be a datetime, got {_type_name(value)} {value!r}"
    return to_utc(value), None


def _date(field: str, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, datetime):
        return value.date(), None
    if isinstance(value, date):
        return value, None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()), None
        except ValueError:
            return None, f"{field} must be a date like '2022-01-01', got {value!r}"
    return (
        None,
        f"{field} must be a date or a 'YYYY-MM-DD' string, got {_type_name(value)} {value!r}",
    )


def _horizon(field: str, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, bool) or not isinstance(value, int):
        return None, f"{field} must be a whole number of days, got {_type_name(value)} {value!r}"
    if value <= 0:
        return None, f"{field} must be a positive number of days (usually 14), got {value}"
    if value > 100_000:
        return None, f"{field} must be at most 100000 days, got {value}"
    return value, None


def _number(field: str, value: Any) -> tuple[float | None, str | None]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"{field} must be a number, got {_type_name(value)} {value!r}"
    as_float = float(value)
    if not math.isfinite(as_float):
        return None, f"{field} must be a finite number, got {value}"
    return as_float, None


def _non_negative(field: str, value: Any) -> tuple[Any, str | None]:
    number, problem = _number(field, value)
    if problem is None and number is not None and number < 0:
        return None, f"{field} must not be negative, got {value}"
    return number, problem


def _signed(field: str, value: Any) -> tuple[Any, str | None]:
    return _number(field, value)


def _probability(field: str, value: Any) -> tuple[Any, str | None]:
    number, problem = _number(field, value)
    if problem is None and number is not None and not 0.0 <= number <= 1.0:
        hint = " (a percentage? divide by 100)" if 1.0 < number <= 100.0 else ""
        return None, f"{field} must be a fraction between 0 and 1, got {value}{hint}"
    return number, problem


def _boolean(field: str, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, bool):
        return None, f"{field} must be True or False, got {_type_name(value)} {value!r}"
    return value, None


def _map_keys(field: str, value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return f"{field} must be a dict, got {_type_name(value)} {value!r}"
    if len(value) > MAX_MAP_ENTRIES:
        return f"{field} must have at most {MAX_MAP_ENTRIES} entries, got {len(value)}"
    for key in value:
        if not isinstance(key, str) or not key.strip():
            return f"{field} keys must be non-empty strings, got {key!r}"
    return None


def _string_map(field: str, value: Any) -> tuple[Any, str | None]:
    """Hyperparameters: strings stay as they are; other values are stored as JSON text."""
    problem = _map_keys(field, value)
    if problem:
        return None, problem
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, str):
            out[key] = item
            continue
        if isinstance(item, float) and not math.isfinite(item):
            return None, f"{field}[{key!r}] must be finite, got {item}"
        try:
            out[key] = json.dumps(item, allow_nan=False)
        except (TypeError, ValueError):
            return None, (
                f"{field}[{key!r}] must be a string or JSON-serialisable value, "
                f"got {_type_name(item)}; convert it with str() first"
            )
    return out, None


def _bool_map(field: str, value: Any) -> tuple[Any, str | None]:
    problem = _map_keys(field, value)
    if problem:
        return None, problem
    for key, item in value.items():
        if not isinstance(item, bool):
            return None, f"{field}[{key!r}] must be True or False, got {_type_name(item)} {item!r}"
    return dict(value), None


@dataclass(frozen=True)
class FieldSpec:
    name: str
    check: Checker
    required: bool


# The seed's columns in the seed's order (experiment_id travels in the envelope).
RUN_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("model_name", _name, True),
    FieldSpec("model_version", _name, True),
    FieldSpec("run_timestamp", _timestamp, True),
    FieldSpec("model_type", _name, True),
    FieldSpec("hyperparameters", _string_map, False),
    FieldSpec("feature_config", _bool_map, False),
    FieldSpec("data_version", _text, False),
    FieldSpec("training_start_date", _date, True),
    FieldSpec("training_end_date", _date, True),
    FieldSpec("forecast_horizon_days", _horizon, True),
    FieldSpec("commodity", _name, True),
    FieldSpec("mae_1day", _non_negative, False),
    FieldSpec("mae_7day", _non_negative, False),
    FieldSpec("mae_14day", _non_negative, False),
    FieldSpec("rmse_14day", _non_negative, False),
    FieldSpec("mape_14day", _non_negative, False),
    FieldSpec("directional_accuracy", _probability, False),
    FieldSpec("dm_test_vs_naive", _signed, False),
    FieldSpec("dm_pvalue", _probability, False),
    FieldSpec("beats_baseline", _boolean, False),
    FieldSpec("execution_time_seconds", _non_negative, False),
    FieldSpec("hardware_config", _text, False),
    FieldSpec("databricks_cluster_id", _text, False),
    FieldSpec("cost_estimate_usd", _non_negative, False),
    FieldSpec("model_path", _text, False),
    FieldSpec("dashboard_url", _text, False),
    FieldSpec("run_by", _text, False),
    FieldSpec("notes", _text, False),
    FieldSpec("is_production", _boolean, False),
)
_BY_NAME = {f.name: f for f in RUN_FIELDS}
ALL_FIELDS = ("experiment_id", *_BY_NAME)


def check_experiment_id(value: Any) -> tuple[str | None, str | None]:
    if not isinstance(value, str):
        return None, f"experiment_id must be a string (a UUID), got {_type_name(value)} {value!r}"
    stripped = value.strip()
    if not stripped:
        return None, "experiment_id must not be empty; leave it out and one is generated"
    if len(stripped) > MAX_EXPERIMENT_ID_LEN:
        return None, (
            f"experiment_id must be at most {MAX_EXPERIMENT_ID_LEN} characters, got {len(stripped)}"
        )
    return stripped, None


def validate_run(run: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Return the normalised payload (without experiment_id) and the list of problems.

    ``run`` must already hold ``experiment_id`` and ``run_timestamp`` (the emitter fills them).
    """
    problems: list[str] = []
    for key in run:
        if key not in _BY_NAME and key != "experiment_id":
            guess = difflib.get_close_matches(str(key), ALL_FIELDS, n=1)
            hint = f"; did you mean {guess[0]!r}?" if guess else "; see runstream's field list"
            problems.append(f"{key!r} is not a model_runs column{hint}")
    payload: dict[str, Any] = {}
    for spec in RUN_FIELDS:
        value = run.get(spec.name)
        if value is None:
            if spec.required:
                problems.append(f"{spec.name} is required and missing")
            payload[spec.name] = None
            continue
        clean, problem = spec.check(spec.name, value)
        if problem:
            problems.append(problem)
        payload[spec.name] = clean
    start, end = payload.get("training_start_date"), payload.get("training_end_date")
    if isinstance(start, date) and isinstance(end, date) and start > end:
        problems.append(
            f"training_start_date ({start}) must not be after training_end_date ({end})"
        )
    return payload, problems
