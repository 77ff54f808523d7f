"""Read historical runs from a file, streaming: JSON Lines, JSON (an array, one object, or
several objects one after another), CSV and Parquet.

Memory stays flat in the file's size: JSON Lines and CSV are read a record at a time, a JSON
array is cut into its items by a small scanner (brackets and strings only; ``json`` parses each
item), Parquet is read by row batches (``pyarrow``, the ``parquet`` extra). One record is at
most ``MAX_RECORD_BYTES``; a longer one is skipped, not loaded.

Each record comes out as a ``Row``: where it is in the file (``line 12``, ``item 3 (line 40)``,
``row 7``), the run as a dict, and the problems found while reading it (bad JSON, a CSV cell
that is not a number). A bad record never stops the file: it is a ``Row`` with problems, and
the next one is read. Only what makes the rest unreadable (a JSON array broken between its
items, a CSV quote never closed) ends the file, as a last ``Row`` whose problem says so.

Columns (CSV, Parquet) and keys (JSON) are named like the run's fields; ``--map FIELD=COLUMN``
fills a field from a differently named column. Text cells (every CSV cell; a Parquet string
column for a field that is not text) are read by the field's type, from the contract's field
table: numbers, whole numbers, booleans (``true``/``false``, ``1``/``0``, ``yes``/``no``),
dates and timestamps in ISO form, maps (``hyperparameters``, ``feature_config``) and lists as
JSON text or ``key=value;key=value`` (``a;b`` for a list). An empty cell is null.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import IO, Any

from runstream.contract.fields import run_fields
from runstream.contract.validation import suggest
from runstream.errors import InputError, SetupError

MAX_RECORD_BYTES = 16 * 1024 * 1024
"""A record (a line, an array item, a CSV row) longer than this is skipped unread: a run is a
few KiB, so such a record is a mistake (a whole array on one line read as JSON Lines, ...)."""
CHUNK = 64 * 1024
PARQUET_BATCH_ROWS = 1024
FORMATS = ("jsonl", "json", "csv", "parquet")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
               ".parquet": "parquet", ".pq": "parquet"}  # fmt: skip
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


@dataclass(frozen=True)
class Row:
    """One record of a source: where it is, the run (a dict, or whatever the file held), and
    the problems found while reading it. ``unread`` names the fields whose cell could not be
    read (their problem is in ``problems``; the field is left out of ``record``)."""

    where: str
    record: Any
    problems: tuple[str, ...] = ()
    unread: frozenset[str] = frozenset()


# -- the field table, as types a text cell is read by ----------------------------------------
def _kind(avro_type: Any) -> str:
    """A field's type as a cell reader needs it: text, number, integer, boolean, date,
    timestamp, ``map:<kind>`` or ``list:<kind>`` (from the Avro type, nullable or not)."""
    if isinstance(avro_type, list):
        return _kind(next(t for t in avro_type if t != "null"))
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "date":
            return "date"
        if logical in ("timestamp-micros", "timestamp-millis"):
            return "timestamp"
        if avro_type["type"] == "map":
            return f"map:{_kind(avro_type['values'])}"
        if avro_type["type"] == "array":
            return f"list:{_kind(avro_type['items'])}"
        return _kind(avro_type["type"])
    return {"string": "text", "double": "number", "float": "number", "int": "integer",
            "long": "integer", "boolean": "boolean"}.get(avro_type, "text")  # fmt: skip


@cache
def field_kinds() -> dict[str, str]:
    """Every field a row may fill (``experiment_id`` and the run's fields) -> its kind."""
    return {"experiment_id": "text", **{f.name: _kind(f.avro_type) for f in run_fields()}}


def _scalar(kind: str, text: str) -> Any:
    """A non-empty text as ``kind``; ValueError with the reason when it is not one."""
    value = text.strip()
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
    if kind == "integer":
        try:
            return int(value)
        except ValueError:
            pass
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if number.is_integer():
            return int(number)
        raise ValueError(f"{text!r} is not a whole number")
    if kind == "boolean":
        lowered = value.lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise ValueError(f"{text!r} is not true or false (true/false, 1/0, yes/no)")
    if kind == "timestamp" and value.endswith(("Z", "z")):
        return value[:-1] + "+00:00"  # ISO's Z, which Python 3.10's fromisoformat refuses
    if kind in ("date", "timestamp"):
        return value  # ISO text; validation reads it (and says what is wrong)
    return text


def read_text_value(kind: str, text: str) -> Any:
    """A cell's text as a value of the field's ``kind``; None for an empty cell.

    Raises ValueError naming what is wrong. Maps and lists take JSON text (``{"p": 1}``,
    ``["a"]``) or ``key=value;key=value`` (``a;b`` for a list)."""
    if not text.strip():
        return None
    if kind == "text":
        return text
    if kind.startswith("map:"):
        inner = kind[4:]
        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                parsed = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{_short(text)} is not JSON ({exc.msg})") from None
            if not isinstance(parsed, dict):
                raise ValueError(f"{_short(text)} is not a JSON object")
            return parsed
        pairs: dict[str, Any] = {}
        for part in stripped.split(";"):
            if not part.strip():
                continue
            key, equals, item = part.partition("=")
            if not equals or not key.strip():
                raise ValueError(
                    f"{_short(part.strip())} is not key=value; write key=value;key=value or a "
                    "JSON object"
                )
            pairs[key.strip()] = item.strip() if inner == "text" else _scalar(inner, item)
        return pairs
    if kind.startswith("list:"):
        inner = kind[5:]
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                parsed = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{_short(text)} is not JSON ({exc.msg})") from None
            if not isinstance(parsed, list):
                raise ValueError(f"{_short(text)} is not a JSON list")
            return parsed
        parts = [p.strip() for p in stripped.split(";") if p.strip()]
        return parts if inner == "text" else [_scalar(inner, p) for p in parts]
    return _scalar(kind, text)


def _short(text: str, limit: int = 60) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else f"{shown[: limit - 4]}...{shown[0]}"


# -- --map -------------------------------------------------------------------------------------
def parse_mapping(items: Iterable[str] | None) -> dict[str, str]:
    """``["FIELD=COLUMN", ...]`` (``--map``) as {field: column}. Raises InputError for a field
    that is not one of the run's (with a did-you-mean) or one mapped twice."""
    mapping: dict[str, str] = {}
    known = field_kinds()
    for item in items or ():
        target, equals, source = item.partition("=")
        target, source = target.strip(), source.strip()
        if not equals or not target or not source:
            raise InputError(
                f"--map {item!r} must be FIELD=COLUMN, e.g. --map mae_14day=MAE_14; FIELD is a "
                "model_runs column, COLUMN the name in the file"
            )
        if target not in known:
            guess = suggest(target)
            hint = f"; did you mean {guess[0]!r}?" if len(guess) == 1 else ""
            raise InputError(f"--map {item}: {target!r} is not a model_runs column{hint}")
        if target in mapping:
            raise InputError(f"--map gives {target} twice ({mapping[target]} and {source})")
        mapping[target] = source
    return mapping


def _column_fields(columns: Sequence[str], mapping: Mapping[str, str], name: str) -> list[str]:
    """The field each column fills (its own name, unless --map says otherwise), checked before
    any row is read: no column twice, every --map column present, no field given twice, no
    column that fills no field (it would make every row invalid)."""
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            raise InputError(f"{name}: the column {column!r} appears twice in the header")
        seen.add(column)
    shown = ", ".join(repr(c) for c in columns[:12]) + (", ..." if len(columns) > 12 else "")
    for target, source in mapping.items():
        if source not in seen:
            raise InputError(
                f"--map {target}={source}: {name} has no column {source!r} (its columns: {shown})"
            )
        if target in seen and target != source and target not in mapping.values():
            raise InputError(
                f"--map {target}={source}: {name} also has a column {target!r}; remove one of "
                "them, or map the other elsewhere"
            )
    by_source = {source: target for target, source in mapping.items()}
    fields = [by_source.get(column, column) for column in columns]
    known = field_kinds()
    unknown = [(c, f) for c, f in zip(columns, fields, strict=True) if f not in known]
    if unknown:
        column = unknown[0][0]
        guess = suggest(column) if column else []
        if not column:
            number = columns.index(column) + 1
            what = f"column {number} has no name (a spreadsheet's or pandas' index?)"
        else:
            what = f"the column {column!r} is not a model_runs column"
        others = [repr(c) for c, _ in unknown[1:6]] + (["..."] if len(unknown) > 6 else [])
        more = f" (nor are {', '.join(others)})" if others else ""
        fix = (
            f"--map {guess[0]}={column}, rename it or remove it"
            if len(guess) == 1
            else "rename it, --map FIELD=COLUMN or remove it"
            if column
            else "give it a field's name or remove it"
        )
        raise InputError(f"{name}: {what}{more}; {fix}")
    return fields


def remap(record: Any, mapping: Mapping[str, str]) -> tuple[Any, tuple[str, ...]]:
    """A dict record with ``mapping`` ({field: key}) applied: each field takes its key's value,
    the key itself goes. Returns the record and its problems (a field given both ways)."""
    if not mapping or not isinstance(record, Mapping):
        return record, ()
    sources = set(mapping.values())
    out = {k: v for k, v in record.items() if k not in sources}
    problems = []
    for target, source in mapping.items():
        if source in record:
            if target in out and target not in sources:
                problems.append(
                    f"{target} is given twice: as {target!r} and as {source!r} "
                    f"(--map {target}={source}); remove one"
                )
            out[target] = record[source]
    return out, tuple(problems)


# -- reading bytes, counting them ---------------------------------------------------------------
class _Counted(io.RawIOBase):
    """A binary file that counts the bytes read from it (for the progress bar)."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.count += size
        return size

    def close(self) -> None:
        self.raw.close()
        super().close()


def _text(binary: IO[bytes], newline: str | None) -> io.TextIOWrapper:
    # surrogateescape: a byte that is not UTF-8 becomes a lone surrogate, which validation
    # reports on the one run that holds it ("not valid UTF-8 text") instead of ending the file
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline=newline)


# -- JSON Lines --------------------------------------------------------------------------------
def _json_lines(binary: IO[bytes]) -> Iterator[Row]:
    number = 0
    while True:
        line = binary.readline(MAX_RECORD_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_RECORD_BYTES and not line.endswith(b"\n"):
            while True:  # skip the rest of the line without keeping it
                rest = binary.readline(CHUNK)
                if not rest or rest.endswith(b"\n"):
                    break
            yield Row(f"line {number}", None, (_too_long("the line"),))
            continue
        text = line.decode("utf-8", "surrogateescape")
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            continue
        try:
            yield Row(f"line {number}", json.loads(text))
        except json.JSONDecodeError as exc:
            yield Row(
                f"line {number}",
                None,
                (f"not JSON ({exc.msg} at column {exc.colno}); give one JSON object per line",),
            )


def _too_long(what: str) -> str:
    return (
        f"{what} is longer than {MAX_RECORD_BYTES // (1024 * 1024)} MiB, far more than a run; "
        "skipped unread"
    )


# -- JSON: an array, one object, or several objects ---------------------------------------------
_STRUCTURE = re.compile(r'[\[\]{}"]')
_STRING_STOP = re.compile(r'["\\]')
_SCALAR_END = re.compile(r"[,\]\s]")
_SPACE = re.compile(r"\s*")


_DECODER = json.JSONDecoder()
_NOTHING = object()


class _Truncated(Exception):
    """The text ended inside a value."""


class _Scanner:
    """Text read in chunks; cuts out one JSON value at a time without parsing it (it follows
    brackets and strings only), and knows the line number of the positions it still holds.
    A value longer than MAX_RECORD_BYTES is skipped without being kept."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.buf = ""
        self.pos = 0
        self.eof = False
        self._line_pos, self._line = 0, 1  # the line number at buf[_line_pos]

    def more(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def line_at(self, index: int) -> int:
        """The line number at ``index`` (indexes asked for only grow, between drops)."""
        if index >= self._line_pos:
            self._line += self.buf.count("\n", self._line_pos, index)
            self._line_pos = index
            return self._line
        return self._line - self.buf.count("\n", index, self._line_pos)

    def drop_before(self, index: int) -> int:
        """Forget buf[:index]; returns how far positions moved back."""
        self.line_at(index)
        self.buf = self.buf[index:]
        self.pos -= index
        self._line_pos -= index
        return index

    def skip_space(self) -> str | None:
        """Move past white space; the next character, or None at the end of the text."""
        while True:
            match = _SPACE.match(self.buf, self.pos)
            assert match is not None
            self.pos = match.end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            self.drop_before(self.pos)
            if not self.more():
                return None

    def whole_container(self) -> Any:
        """The object or array at ``pos`` when the buffer holds all of it (the usual case: one
        call into the C decoder), moving past it; else ``_NOTHING``, and ``value`` decides."""
        if self.pos > CHUNK:
            self.drop_before(self.pos)
        if self.buf[self.pos] not in "[{":
            return _NOTHING
        try:
            parsed, end = _DECODER.raw_decode(self.buf, self.pos)
        except json.JSONDecodeError:
            return _NOTHING  # cut by the buffer's end, or malformed: scanned to tell which
        self.pos = end
        return parsed

    def value(self) -> str | None:
        """Cut out the value at ``pos`` and move past it: its text, or None when it is longer
        than MAX_RECORD_BYTES. Raises _Truncated when the text ends inside it."""
        if self.pos > CHUNK:
            self.drop_before(self.pos)
        start = self.pos
        first = self.buf[start]
        if first in "[{":
            end = self._container(start)
        elif first == '"':
            end = self._string(start, start + 1, keep=True)
        else:
            end = self._scalar(start)
        if end is None:
            return None
        self.pos = end
        return self.buf[start:end]

    def _grow(self, start: int, i: int, keep: bool) -> tuple[int, int, bool]:
        """At the end of the buffer while scanning from ``start``: read more, and once the value
        is too long to keep, drop what was scanned. Returns the shifted start and index."""
        if keep and i - start > MAX_RECORD_BYTES:
            keep = False
        if not keep:
            shift = self.drop_before(i)
            start, i = start - shift, i - shift
        if not self.more():
            raise _Truncated
        return start, i, keep

    def _container(self, start: int) -> int | None:
        depth, i, keep = 0, start, True
        while True:
            match = _STRUCTURE.search(self.buf, i)
            if match is None:
                start, i, keep = self._grow(start, len(self.buf), keep)
                continue
            char, i = match.group(), match.end()
            if char == '"':
                end = self._string(start, i, keep)
                if end is None:  # the value grew too long inside the string
                    keep, i, start = False, self.pos, self.pos
                else:
                    i = end
            elif char in "[{":
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    if keep:
                        return i
                    self.pos = i
                    return None

    def _string(self, start: int, i: int, keep: bool) -> int | None:
        """Past the closing quote of a string whose content starts at ``i``, in a value that
        starts at ``start``; None (with ``pos`` past it) when the value is no longer kept."""
        while True:
            match = _STRING_STOP.search(self.buf, i)
            if match is None:
                start, i, keep = self._grow(start, len(self.buf), keep)
                continue
            if match.group() == "\\":
                if match.end() >= len(self.buf):
                    start, i, keep = self._grow(start, match.start(), keep)
                    continue
                i = match.end() + 1
                continue
            if keep:
                return match.end()
            self.pos = match.end()
            return None

    def _scalar(self, start: int) -> int | None:
        while True:
            match = _SCALAR_END.search(self.buf, start)
            if match is not None:
                return match.start()
            if len(self.buf) - start > MAX_RECORD_BYTES:
                self.pos = len(self.buf)
                return None
            if not self.more():
                return len(self.buf)


def _json_values(stream: IO[str], array: bool) -> Iterator[Row]:
    """The items of a JSON array (``array``), or JSON objects one after another."""
    scan = _Scanner(stream)
    if array:
        if scan.skip_space() != "[":
            yield Row("line 1", None, ("a JSON array must start with '['",))
            return
        scan.pos += 1
    number = 0
    while True:
        char = scan.skip_space()
        line = scan.line_at(scan.pos)
        if char is None:
            if array:
                yield Row(
                    f"line {line}",
                    None,
                    ("the file ends before the JSON array's closing ']'; is it cut short?",),
                )
            return
        if array and char == "]":
            scan.pos += 1
            tail = scan.skip_space()
            if tail is not None:
                line = scan.line_at(scan.pos)
                yield Row(f"line {line}", None, (f"{tail!r} after the array's end",))
            return
        if not array and char not in "{[":
            yield Row(
                f"line {line}",
                None,
                (f"expected a JSON object, found {char!r}; the rest of the file was not read",),
            )
            return
        number += 1
        where = f"item {number} (line {line})"
        quick = scan.whole_container()
        if quick is not _NOTHING:
            yield Row(where, quick)
        else:
            try:
                text = scan.value()
            except _Truncated:
                yield Row(where, None, ("the file ends inside this item; is it cut short?",))
                return
            if text is None:
                yield Row(where, None, (_too_long("the item"),))
            else:
                try:
                    yield Row(where, json.loads(text))
                except json.JSONDecodeError as exc:
                    yield Row(where, None, (f"not valid JSON ({exc.msg})",))
        if array:
            after = scan.skip_space()
            if after == ",":
                scan.pos += 1
            elif after != "]":
                shown = "the end of the file" if after is None else repr(after)
                yield Row(
                    f"line {scan.line_at(scan.pos)}",
                    None,
                    (
                        f"expected ',' or ']' after item {number}, found {shown}; the rest of "
                        "the file was not read",
                    ),
                )
                return


# -- CSV ---------------------------------------------------------------------------------------
def _csv_rows(stream: IO[str], name: str, mapping: Mapping[str, str]) -> Iterator[Row]:
    reader = csv.reader(stream)
    kinds = field_kinds()
    header: list[str] | None = None
    fields: list[str] = []
    line = 1
    while True:
        start = line
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Row(
                f"line {start}", None, (f"not readable as CSV ({exc}); the rest was not read",)
            )
            return
        line = reader.line_num + 1
        if header is None:
            if not any(c.strip() for c in cells):
                continue
            header = [c.strip() for c in cells]
            fields = _column_fields(header, mapping, name)
            continue
        if not any(c.strip() for c in cells):
            continue
        where = f"line {start}"
        if len(cells) > len(header):
            yield Row(
                where,
                None,
                (f"{len(cells)} cells, but the header has {len(header)} columns",),
            )
            continue
        record: dict[str, Any] = {}
        problems: list[str] = []
        unread: set[str] = set()
        for column, target, cell in zip(header, fields, cells, strict=False):
            kind = kinds.get(target, "text")
            try:
                record[target] = read_text_value(kind, cell)
            except ValueError as exc:
                named = target if column == target else f"{target} (column {column})"
                problems.append(f"{named}: {exc}")
                unread.add(target)
        for target in fields[len(cells) :]:
            record[target] = None  # a short row: the missing trailing cells are empty
        for target in unread:
            record.pop(target, None)
        yield Row(where, record, tuple(problems), frozenset(unread))


# -- Parquet -----------------------------------------------------------------------------------
def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SetupError(
            "reading Parquet needs pyarrow, which is not installed; install the parquet extra: "
            "pip install 'runstream[parquet]'"
        ) from None
    return pq


def _pandas_index(column: str) -> bool:
    return column.startswith("__index_level_") and column.endswith("__")


def parquet_value(kind: str, value: Any) -> Any:
    """A Parquet cell as the field wants it: maps (read as key/value pairs) as dicts, decimals
    as floats, whole floats for whole-number fields as ints, text through ``read_text_value``."""
    if value is None:
        return None
    if isinstance(value, str) and kind != "text":
        return read_text_value(kind, value)
    if kind.startswith("map:") and isinstance(value, list):
        return dict(value)
    if isinstance(value, Decimal):
        value = float(value)
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# -- a source ----------------------------------------------------------------------------------
@dataclass
class Source:
    """An opened file of runs: ``rows()`` yields them in order, once; ``position()`` says how
    far it got, in ``unit`` (bytes, or rows for Parquet) out of ``total`` (None: unknown).
    ``notes`` gathers what the reader wants said once it is done (a --map key never seen)."""

    name: str
    format: str
    path: Path | None
    total: int | None
    unit: str
    _rows: Iterator[Row] = field(repr=False)
    _position: Callable[[], int] = field(repr=False)
    _close: Callable[[], None] = field(repr=False)
    notes: list[str] = field(default_factory=list)

    def rows(self) -> Iterator[Row]:
        try:
            yield from self._rows
        finally:
            self.close()

    def position(self) -> int:
        return self._position()

    def close(self) -> None:
        self._close()

    @property
    def ledger_key(self) -> str | None:
        """What identifies the file for the backfill ledger (None for stdin)."""
        return None if self.path is None else str(self.path.resolve())


def _open_binary(path: str) -> tuple[IO[bytes], int | None]:
    if path == "-":
        return sys.stdin.buffer, None
    try:
        handle = open(path, "rb")  # noqa: SIM115 (the Source closes it)
    except FileNotFoundError:
        raise InputError(
            f"{path}: no such file; give the path of a file of runs (JSON Lines, JSON, CSV "
            "or Parquet)"
        ) from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder; give the path of a file of runs") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    return handle, os.fstat(handle.fileno()).st_size


def _detect(head: bytes, path: str, input_format: str, name: str) -> str:
    """The reader for a file: jsonl, json (an array, or values one after another), csv or
    parquet. ``auto``: by the extension, else by the first bytes; a JSON file starting with
    '{' is JSON Lines when its first line is a whole JSON value."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{name} is UTF-16 text; save it as UTF-8")
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    fmt = input_format
    if fmt == "auto":
        fmt = _EXTENSIONS.get(Path(path).suffix.lower(), "") if path != "-" else ""
    if not fmt:
        if head.startswith(b"PAR1"):
            fmt = "parquet"
        elif start[:1] in (b"[", b"{"):
            fmt = "json"
        else:
            fmt = "csv"
    if fmt == "json" and start[:1] == b"{":
        line = start.split(b"\n", 1)[0].decode("utf-8", "surrogateescape")
        try:
            json.loads(line)
        except json.JSONDecodeError:
            return "json"
        return "jsonl"
    if fmt == "jsonl" and input_format == "auto" and start[:1] == b"[":
        return "json"  # a JSON array, whatever the file is called
    return fmt


def open_source(
    path: str, input_format: str = "auto", mapping: Mapping[str, str] | None = None
) -> Source:
    """Open a file of runs (``-``: stdin) for streaming. ``input_format``: ``auto`` (by the
    extension, else by the first bytes) or one of ``FORMATS``. ``mapping`` is ``--map``
    ({field: column}). Raises InputError for a missing or empty file, a header with a column
    that is no field or a --map column the file lacks; SetupError for Parquet without pyarrow."""
    mapping = dict(mapping or {})
    name = "stdin" if path == "-" else path
    if input_format not in ("auto", *FORMATS):
        raise InputError(
            f"unknown input format {input_format!r}; one of auto, {', '.join(FORMATS)}"
        )
    handle, size = _open_binary(path)
    counted = _Counted(handle)
    binary = io.BufferedReader(counted, CHUNK)
    try:
        head = binary.peek(CHUNK)[:CHUNK]
        if not head.strip(b" \t\r\n\xef\xbb\xbf"):
            raise InputError(f"{name} is empty; give a file of runs")
        fmt = _detect(head, path, input_format, name)
        if fmt == "parquet":
            if path == "-":
                raise InputError("Parquet cannot be read from stdin; give the file's path")
            binary.close()
            return _parquet_source(path, name, mapping)
        source = Source(
            name, fmt, None if path == "-" else Path(path), size, "B", iter(()),
            lambda: counted.count, binary.close,
        )  # fmt: skip
        rows: Iterator[Row]
        if fmt == "csv":
            # the header is read now, so a bad one fails before anything is sent
            rows = _primed(_csv_rows(_text(binary, ""), name, mapping))
        elif fmt == "jsonl":
            rows = _mapped(_json_lines(binary), mapping, source.notes)
        else:
            array = head.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"["
            rows = _mapped(_json_values(_text(binary, None), array), mapping, source.notes)
        source._rows = rows
    except BaseException:
        binary.close()
        raise
    return source


def _primed(rows: Iterator[Row]) -> Iterator[Row]:
    """Run ``rows`` up to its first row now (so errors about the header raise here)."""
    first = next(rows, None)

    def rest() -> Iterator[Row]:
        if first is not None:
            yield first
            yield from rows

    return rest()


def _mapped(rows: Iterator[Row], mapping: Mapping[str, str], notes: list[str]) -> Iterator[Row]:
    """``rows`` with --map applied; at the end, a note for each --map key no record held."""
    if not mapping:
        yield from rows
        return
    unseen = dict(mapping)
    for row in rows:
        record, problems = remap(row.record, mapping)
        if unseen and isinstance(row.record, Mapping):
            for target, source in list(unseen.items()):
                if source in row.record:
                    del unseen[target]
        yield Row(row.where, record, row.problems + problems, row.unread)
    notes.extend(f"--map {t}={s}: no record has the key {s!r}" for t, s in unseen.items())


def _parquet_source(path: str, name: str, mapping: Mapping[str, str]) -> Source:
    pq = _pyarrow_parquet()
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise InputError(f"{name} is not a readable Parquet file ({exc})") from None
    try:
        columns = [c for c in parquet.schema_arrow.names if not _pandas_index(c)]
        targets = _column_fields(columns, mapping, name)
    except BaseException:
        parquet.close()
        raise
    kinds = field_kinds()
    done = [0]

    def rows() -> Iterator[Row]:
        number = 0
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            cells = [batch.column(i).to_pylist() for i in range(len(columns))]
            for values in zip(*cells, strict=True):
                number += 1
                record: dict[str, Any] = {}
                problems: list[str] = []
                unread: set[str] = set()
                for column, target, value in zip(columns, targets, values, strict=True):
                    try:
                        record[target] = parquet_value(kinds[target], value)
                    except ValueError as exc:
                        named = target if column == target else f"{target} (column {column})"
                        problems.append(f"{named}: {exc}")
                        unread.add(target)
                done[0] = number
                yield Row(f"row {number}", record, tuple(problems), frozenset(unread))

    return Source(
        name, "parquet", Path(path), parquet.metadata.num_rows, "rows", rows(),
        lambda: done[0], parquet.close,
    )  # fmt: skip
