"""Turn a user's run (the seed's dict, or keyword arguments) into a valid event payload.

Everything is checked before anything is written, and every problem is reported at once, each
naming the field, the value and the fix, so one failed call tells the user all they must change.

Time rule: a naive ``datetime`` (what ``datetime.now()`` returns) is read as the emitting
machine's local time; an aware one keeps its zone. Both are stored as UTC instants. ISO strings
follow the same rule (``"2024-12-31T08:30:00"`` is local, ``"...+01:00"`` is not), and a bare
``date`` or ``"2024-12-31"`` means local midnight. A ``run_timestamp`` must lie between
1970-01-01 and one day after now: anything else is a unit or time-zone mistake (epoch
milliseconds read as seconds, a swapped year), and it would sit in a nonsense partition.

Dates accept ``date`` objects, ``datetime`` objects (their calendar date) and ISO strings
(``"2022-01-01"``).

Numbers accept anything registered as ``numbers.Real`` (``int``, ``float``, NumPy scalars), so a
backtest can pass its metrics straight through; ``bool`` is refused where a number is meant,
since ``True`` as a metric is always a slip.
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

MAX_NAME_LEN = 256
MAX_TEXT_LEN = 64 * 1024
MAX_MAP_ENTRIES = 1000
MAX_EXPERIMENT_ID_LEN = 128
MAX_HORIZON_DAYS = 100_000
EARLIEST_RUN = datetime(1970, 1, 1, tzinfo=timezone.utc)
FUTURE_SLACK = timedelta(days=1)

Checker = Callable[[str, Any], tuple[Any, str | None]]


def _type_name(value: Any) -> str:
    return type(value).__name__


def _shown(value: Any, limit: int = 60) -> str:
    """``repr`` cut short, so one huge value cannot bury the other problems."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _is_bool(value: Any) -> bool:
    """``bool`` or NumPy's ``bool_`` (checked by name: the producer does not import NumPy)."""
    kind = type(value)
    return kind is bool or (kind.__module__ == "numpy" and kind.__name__ in ("bool_", "bool"))


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not _is_bool(value)


def _unencodable(value: str) -> bool:
    """True for strings Avro cannot carry (lone surrogates, e.g. from a bad decode)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _name(field: str, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"{field} must be a string, got {_type_name(value)} {_shown(value)}"
    stripped = value.strip()
    if not stripped:
        return None, f"{field} must not be empty; give it a value such as {_EXAMPLES[field]}"
    if len(stripped) > MAX_NAME_LEN:
        return None, (
            f"{field} must be at most {MAX_NAME_LEN} characters, got {len(stripped)}; "
            "put long descriptions in notes"
        )
    if _unencodable(stripped):
        return None, f"{field} is not valid UTF-8 text, got {_shown(value)}; fix its encoding"
    return stripped, None


def _text(field: str, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, (
            f"{field} must be a string or None, got {_type_name(value)} {_shown(value)}; "
            "convert it with str()"
        )
    if len(value) > MAX_TEXT_LEN:
        return None, (
            f"{field} must be at most {MAX_TEXT_LEN} characters, got {len(value)}; "
            "store large text elsewhere and put its path or link here"
        )
    if _unencodable(value):
        return None, f"{field} is not valid UTF-8 text, got {_shown(value)}; fix its encoding"
    return value, None


def to_utc(value: datetime) -> datetime:
    """Apply the time rule: naive means local time of this machine."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.astimezone()  # interprets naive as local time
    return value.astimezone(timezone.utc)


def _timestamp(field: str, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None, (
                f"{field} must be a datetime or an ISO-8601 string like "
                f"'2024-12-31T08:30:00', got {_shown(value)}"
            )
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if _is_real(value):
        return None, (
            f"{field} must be a datetime, got {_type_name(value)} {_shown(value)}; for epoch "
            "seconds use datetime.fromtimestamp(value, timezone.utc)"
        )
    if not isinstance(value, datetime):
        return None, (
            f"{field} must be a datetime such as datetime.now(), "
            f"got {_type_name(value)} {_shown(value)}"
        )
    try:
        instant = to_utc(value)
    except (OverflowError, ValueError, OSError):
        instant = None
    latest = datetime.now(timezone.utc) + FUTURE_SLACK
    if instant is None or not EARLIEST_RUN <= instant <= latest:
        return None, (
            f"{field} must lie between 1970-01-01 and now, got {value.isoformat()}; "
            "check the clock, the time zone and the units"
        )
    return instant, None


def _date(field: str, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, datetime):
        return value.date(), None
    if isinstance(value, date):
        return value, None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()), None
        except ValueError:
            return None, f"{field} must be a date like '2022-01-01', got {_shown(value)}"
    return (
        None,
        f"{field} must be a date or a 'YYYY-MM-DD' string, got {_type_name(value)} {_shown(value)}",
    )


def _horizon(field: str, value: Any) -> tuple[Any, str | None]:
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        return None, (
            f"{field} must be a whole number of days such as 14, "
            f"got {_type_name(value)} {_shown(value)}"
        )
    days = int(value)
    if days <= 0:
        return None, f"{field} must be a positive number of days (usually 14), got {days}"
    if days > MAX_HORIZON_DAYS:
        return None, f"{field} must be at most {MAX_HORIZON_DAYS} days, got {days}"
    return days, None


def _number(field: str, value: Any) -> tuple[float | None, str | None]:
    if not _is_real(value):
        return None, (
            f"{field} must be a number or None, got {_type_name(value)} {_shown(value)}; "
            "convert it with float()"
        )
    as_float = float(value)
    if not math.isfinite(as_float):
        return None, (
            f"{field} must be a finite number, got {as_float}; "
            "leave it out (or pass None) when the metric could not be computed"
        )
    return as_float, None


def _non_negative(field: str, value: Any) -> tuple[Any, str | None]:
    number, problem = _number(field, value)
    if problem is None and number is not None and number < 0:
        return None, f"{field} must not be negative, got {number}; errors, times and costs are >= 0"
    return number, problem


def _signed(field: str, value: Any) -> tuple[Any, str | None]:
    return _number(field, value)


def _probability(field: str, value: Any) -> tuple[Any, str | None]:
    number, problem = _number(field, value)
    if problem is None and number is not None and not 0.0 <= number <= 1.0:
        hint = "; a percentage? divide by 100" if 1.0 < number <= 100.0 else ""
        return None, f"{field} must be a fraction between 0 and 1, got {number}{hint}"
    return number, problem


def _boolean(field: str, value: Any) -> tuple[Any, str | None]:
    if not _is_bool(value):
        return None, (
            f"{field} must be True or False, got {_type_name(value)} {_shown(value)}; "
            "pass a bool, not a string or number"
        )
    return bool(value), None


def _map_keys(field: str, value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return f"{field} must be a dict of name -> value, got {_type_name(value)} {_shown(value)}"
    if len(value) > MAX_MAP_ENTRIES:
        return f"{field} must have at most {MAX_MAP_ENTRIES} entries, got {len(value)}"
    for key in value:
        if not isinstance(key, str) or not key.strip():
            return f"{field} keys must be non-empty strings, got {_shown(key)}; use str(key)"
        if _unencodable(key):
            return f"{field} key {_shown(key)} is not valid UTF-8 text; fix its encoding"
    return None


def _string_map(field: str, value: Any) -> tuple[Any, str | None]:
    """Hyperparameters: strings stay as they are; other values are stored as JSON text."""
    problem = _map_keys(field, value)
    if problem:
        return None, problem
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, str):
            if _unencodable(item):
                return None, f"{field}[{key!r}] is not valid UTF-8 text; fix its encoding"
            out[key] = item
            continue
        if isinstance(item, float) and not math.isfinite(item):
            return None, f"{field}[{key!r}] must be finite, got {item}; pass it as a string"
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
        if not _is_bool(item):
            return None, (
                f"{field}[{key!r}] must be True or False, got {_type_name(item)} "
                f"{_shown(item)}; feature_config records which features were used"
            )
    return {k: bool(v) for k, v in value.items()}, None


@dataclass(frozen=True)
class FieldSpec:
    """One column of ``model_runs``: how to check it, and whether a run must have it."""

    name: str
    check: Checker
    required: bool


# Python source shown in "missing" and "empty" messages, so the fix is one copy-paste away.
_EXAMPLES: dict[str, str] = {
    "model_name": "'sarimax_auto_weather_v1'",
    "model_version": "'v1'",
    "run_timestamp": "datetime.now()",
    "model_type": "'SARIMAX'",
    "training_start_date": "'2022-01-01'",
    "training_end_date": "'2024-12-31'",
    "forecast_horizon_days": "14",
    "commodity": "'Coffee'",
}

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
        return None, (
            f"experiment_id must be a string (a UUID), got {_type_name(value)} {_shown(value)}; "
            "pass str(uuid.uuid4()) or leave it out and one is generated"
        )
    stripped = value.strip()
    if not stripped:
        return None, "experiment_id must not be empty; leave it out and one is generated"
    if len(stripped) > MAX_EXPERIMENT_ID_LEN:
        return None, (
            f"experiment_id must be at most {MAX_EXPERIMENT_ID_LEN} characters, got "
            f"{len(stripped)}; use a UUID"
        )
    if _unencodable(stripped):
        return None, f"experiment_id is not valid UTF-8 text, got {_shown(value)}; use a UUID"
    return stripped, None


def suggest(key: str) -> list[str]:
    """Columns a misspelt ``key`` probably meant, best first (empty if nothing is close).

    Whole words first (``cluster_id`` -> ``databricks_cluster_id``, ``mae`` -> the three MAE
    columns), then spelling (``mae14`` -> ``mae_14day``) with a cutoff high enough that
    ``learning_rate`` suggests nothing rather than ``training_start_date``.
    """
    lowered = key.strip().lower().replace("-", "_").replace(" ", "_")
    if lowered in ALL_FIELDS:
        return [lowered]
    words = {w for w in lowered.split("_") if w}
    by_words = [f for f in ALL_FIELDS if words and words <= set(f.split("_"))]
    if 0 < len(by_words) <= 4:
        return by_words
    return difflib.get_close_matches(lowered, ALL_FIELDS, n=1, cutoff=0.7)


def _unknown(key: Any) -> str:
    guess = suggest(str(key))
    if len(guess) == 1:
        return f"{key!r} is not a model_runs column; did you mean {guess[0]!r}?"
    if guess:
        options = ", ".join(repr(g) for g in guess)
        return f"{key!r} is not a model_runs column; did you mean one of {options}?"
    return (
        f"{key!r} is not a model_runs column; remove it, or put it in hyperparameters "
        "(settings) or notes (anything else)"
    )


def validate_run(run: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Return the normalised payload (without experiment_id) and the list of problems.

    ``run`` must already hold ``experiment_id`` and ``run_timestamp`` (the emitter fills them).
    """
    problems = [_unknown(key) for key in run if key not in _BY_NAME and key != "experiment_id"]
    payload: dict[str, Any] = {}
    for spec in RUN_FIELDS:
        value = run.get(spec.name)
        if value is None:
            if spec.required:
                problems.append(
                    f"{spec.name} is required and missing; add it, e.g. "
                    f"{spec.name}={_EXAMPLES[spec.name]}"
                )
            payload[spec.name] = None
            continue
        clean, problem = spec.check(spec.name, value)
        if problem:
            problems.append(problem)
        payload[spec.name] = clean
    start, end = payload.get("training_start_date"), payload.get("training_end_date")
    if isinstance(start, date) and isinstance(end, date) and start > end:
        problems.append(
            f"training_start_date ({start}) must not be after training_end_date ({end}); swap them?"
        )
    return payload, problems
