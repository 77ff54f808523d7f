"""Turn a user's run (the seed's dict, or keyword arguments) into a valid event payload.

Everything is checked before anything is written, and every problem is reported at once, each
naming the field, the value and the fix, so one failed call tells the user all they must change.
Which check a field gets comes from its rule in ``runstream.contract.fields``; this module holds
one checker per rule.

Commodities: a run's ``commodity`` must be one of a configured list (``RUNSTREAM_COMMODITIES``,
default the seed's ``Coffee`` and ``Sugar``), because each spelling is a partition and every
query filters on the exact text: a ``'coffee'`` run would be invisible to all of them. A case
or spelling variant of a listed commodity gets a did-you-mean; a new commodity is added to the
list. Training dates lie between 1900-01-01 and the run's date (one day of slack for time
zones). ``experiment_id`` is a UUID in any form ``uuid.UUID`` reads, stored canonical.

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
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from runstream.contract.fields import EXAMPLES, Rule, field_names, run_fields

MAX_NAME_LEN = 256
MAX_TEXT_LEN = 64 * 1024
MAX_MAP_ENTRIES = 1000
MAX_HORIZON_DAYS = 100_000
EARLIEST_RUN = datetime(1970, 1, 1, tzinfo=timezone.utc)
EARLIEST_TRAINING_DATE = date(1900, 1, 1)
FUTURE_SLACK = timedelta(days=1)
DEFAULT_COMMODITIES = ("Coffee", "Sugar")

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


# Unicode's control characters (category Cc): C0, DEL and C1. A regex scans a 64 KiB note in
# microseconds, where a per-character loop would weigh on emit_run().
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _control_character(value: str, allowed: str = "") -> str | None:
    """The first control character in ``value`` (other than ``allowed``), shown as an escape.

    A NUL or a line break inside a name or an id breaks the tools that read the table (CSV
    exports, terminals, log lines) and makes two runs look alike that are not.
    """
    for match in _CONTROL.finditer(value):
        if match[0] not in allowed:
            return repr(match[0])[1:-1]
    return None


def _name(field: str, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"{field} must be a string, got {_type_name(value)} {_shown(value)}"
    stripped = value.strip()
    if not stripped:
        return None, f"{field} must not be empty; give it a value such as {EXAMPLES[field]}"
    if len(stripped) > MAX_NAME_LEN:
        return None, (
            f"{field} must be at most {MAX_NAME_LEN} characters, got {len(stripped)}; "
            "put long descriptions in notes"
        )
    if _unencodable(stripped):
        return None, f"{field} is not valid UTF-8 text, got {_shown(value)}; fix its encoding"
    bad = _control_character(stripped)
    if bad:
        return None, (
            f"{field} must not contain control characters, got '{bad}' in {_shown(value)}; "
            "remove it"
        )
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
    bad = _control_character(value, allowed="\t\n\r")
    if bad:
        return None, (
            f"{field} must not contain control characters other than tabs and line breaks, "
            f"got '{bad}'; remove it"
        )
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


def _training_date(field: str, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, datetime):
        value = value.date()
    elif isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            return None, f"{field} must be a date like '2022-01-01', got {_shown(value)}"
    elif not isinstance(value, date):
        return None, (
            f"{field} must be a date or a 'YYYY-MM-DD' string, "
            f"got {_type_name(value)} {_shown(value)}"
        )
    if value < EARLIEST_TRAINING_DATE:
        return None, (
            f"{field} must be on or after {EARLIEST_TRAINING_DATE}, got {value}; check the year"
        )
    return value, None


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
    try:
        as_float = float(value)
    except OverflowError:
        return None, (
            f"{field} must be a finite number, got an integer of {len(str(value))} digits, "
            "too large for a double; check the units"
        )
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


def _fraction(field: str, value: Any) -> tuple[Any, str | None]:
    number, problem = _number(field, value)
    if problem is None and number is not None and not 0.0 <= number <= 1.0:
        hint = "; a percentage? divide by 100" if 1.0 < number <= 100.0 else ""
        return None, f"{field} must be a fraction between 0 and 1, got {number}{hint}"
    return number, problem


def _flag(field: str, value: Any) -> tuple[Any, str | None]:
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
        bad = _control_character(key)
        if bad:
            return f"{field} key {_shown(key)} must not contain control characters ('{bad}')"
    return None


def _setting_text(item: Any) -> str:
    """A hyperparameter value as text: strings as they are, tuples as Python writes them
    (``(1, 1, 1)``, as statsmodels' orders are usually quoted), other values as JSON."""
    if isinstance(item, str):
        return item
    if isinstance(item, tuple):
        return str(item)
    return json.dumps(item, allow_nan=False)


def _settings(field: str, value: Any) -> tuple[Any, str | None]:
    """Hyperparameters: strings stay as they are; other values are stored as text."""
    problem = _map_keys(field, value)
    if problem:
        return None, problem
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, str) and _unencodable(item):
            return None, f"{field}[{key!r}] is not valid UTF-8 text; fix its encoding"
        if isinstance(item, float) and not math.isfinite(item):
            return None, f"{field}[{key!r}] must be finite, got {item}; pass it as a string"
        try:
            out[key] = _setting_text(item)
        except (TypeError, ValueError):
            return None, (
                f"{field}[{key!r}] must be a string or JSON-serialisable value, "
                f"got {_type_name(item)}; convert it with str() first"
            )
    return out, None


def _flags(field: str, value: Any) -> tuple[Any, str | None]:
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


# One checker per rule; the commodity list is checked in ``validate_run`` (it is a setting).
CHECKERS: dict[Rule, Checker] = {
    Rule.NAME: _name,
    Rule.COMMODITY: _name,
    Rule.TEXT: _text,
    Rule.TIMESTAMP: _timestamp,
    Rule.TRAINING_DATE: _training_date,
    Rule.HORIZON: _horizon,
    Rule.NON_NEGATIVE: _non_negative,
    Rule.FRACTION: _fraction,
    Rule.FINITE: _number,
    Rule.FLAG: _flag,
    Rule.SETTINGS: _settings,
    Rule.FLAGS: _flags,
}


def check_experiment_id(value: Any) -> tuple[str | None, str | None]:
    """A UUID in any form ``uuid.UUID`` reads (braces, ``urn:uuid:``, no hyphens, upper
    case), returned canonical (lower case, hyphenated), so one run never has two spellings."""
    fix = "pass str(uuid.uuid4()), or leave it out and one is generated"
    if not isinstance(value, (str, uuid.UUID)):
        return None, (
            f"experiment_id must be a UUID string, got {_type_name(value)} {_shown(value)}; {fix}"
        )
    if isinstance(value, uuid.UUID):
        return str(value), None
    text = value.strip()
    if not text:
        return None, f"experiment_id must not be empty; {fix}"
    try:
        parsed = uuid.UUID(text) if text.isprintable() and text.isascii() else None
    except ValueError:
        parsed = None
    if parsed is None:
        return None, f"experiment_id must be a UUID, got {_shown(value)}; {fix}"
    return str(parsed), None


def commodity_problem(value: str, allowed: Iterable[str]) -> str | None:
    """Why ``value`` is not an allowed commodity (None when it is), with a did-you-mean."""
    known = list(dict.fromkeys(allowed))
    if value in known:
        return None
    listed = ", ".join(repr(k) for k in known)
    variant = [k for k in known if k.casefold() == value.casefold()]
    variant = variant or difflib.get_close_matches(value, known, n=1, cutoff=0.75)
    if not variant:
        variant = difflib.get_close_matches(
            value.casefold(), [k.casefold() for k in known], n=1, cutoff=0.75
        )
        variant = [k for k in known if variant and k.casefold() == variant[0]]
    if variant:
        return (
            f"commodity {value!r} is not a known commodity; did you mean {variant[0]!r}? "
            "Each spelling would be its own partition, invisible to queries for the other"
        )
    return (
        f"commodity {value!r} is not a known commodity (known: {listed}); if it is new, add it "
        "to RUNSTREAM_COMMODITIES (comma separated) or pass commodities= to Emitter"
    )


def suggest(key: str) -> list[str]:
    """Columns a misspelt ``key`` probably meant, best first (empty if nothing is close).

    Whole words first (``cluster_id`` -> ``databricks_cluster_id``, ``mae`` -> the three MAE
    columns), then spelling (``mae14`` -> ``mae_14day``) with a cutoff high enough that
    ``learning_rate`` suggests nothing rather than ``training_start_date``.
    """
    columns = ("experiment_id", *field_names())
    lowered = key.strip().lower().replace("-", "_").replace(" ", "_")
    if lowered in columns:
        return [lowered]
    words = {w for w in lowered.split("_") if w}
    by_words = [f for f in columns if words and words <= set(f.split("_"))]
    if 0 < len(by_words) <= 4:
        return by_words
    return difflib.get_close_matches(lowered, columns, n=1, cutoff=0.7)


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


def _row_problems(payload: Mapping[str, Any]) -> list[str]:
    """Checks across fields: an ordered training window that ends by the run's date."""
    problems = []
    start, end = payload.get("training_start_date"), payload.get("training_end_date")
    if isinstance(start, date) and isinstance(end, date) and start > end:
        problems.append(
            f"training_start_date ({start}) must not be after training_end_date ({end}); swap them?"
        )
    ran = payload.get("run_timestamp")
    if isinstance(end, date) and isinstance(ran, datetime):
        # one day of slack: the run's date is UTC, the user's calendar may be ahead of it
        last = (ran + FUTURE_SLACK).date()
        if end > last:
            problems.append(
                f"training_end_date ({end}) must not be after the run's date "
                f"({ran.date()}, from run_timestamp): a model cannot train on the future; "
                "check the year, or set run_timestamp when backfilling old runs"
            )
    return problems


def validate_run(
    run: Mapping[str, Any], *, commodities: Iterable[str] = DEFAULT_COMMODITIES
) -> tuple[dict[str, Any], list[str]]:
    """Return the normalised payload (without experiment_id) and the list of problems.

    ``run`` must already hold ``run_timestamp`` (the emitter fills it). ``commodities`` is the
    list ``commodity`` must come from.
    """
    known = set(field_names())
    problems = [_unknown(key) for key in run if key not in known and key != "experiment_id"]
    payload: dict[str, Any] = {}
    for spec in run_fields():
        value = run.get(spec.name)
        if value is None:
            if spec.required:
                problems.append(
                    f"{spec.name} is required and missing; add it, e.g. {spec.name}={spec.example}"
                )
            payload[spec.name] = None
            continue
        clean, problem = CHECKERS[spec.rule](spec.name, value)
        if problem is None and spec.rule is Rule.COMMODITY:
            problem = commodity_problem(clean, commodities)
        if problem:
            problems.append(problem)
        payload[spec.name] = clean
    problems.extend(_row_problems(payload))
    return payload, problems
