"""Schema versions and the wire format.

Wire format: Avro single-object encoding, ``C3 01`` + the writer schema's 8-byte CRC-64-AVRO
fingerprint (little endian) + the Avro binary body. We chose it over a schema registry's
framing because producers run on laptops and CI boxes that may never see a registry: the header
alone names the writer schema, and every version ships with the package (``schemas/``, which
the wheel carries as ``runstream/_schemas``), so any reader can resolve old and new writers
without a network call.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from runstream.errors import SchemaError

if TYPE_CHECKING:
    from importlib.abc import Traversable

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8

EVENT_SCHEMA_NAME = "model_run_event"
RUN_RECORDED = "run_recorded"
RUN_PROMOTED = "run_promoted"
RUN_ANNOTATED = "run_annotated"
EVENT_TYPES = (RUN_RECORDED, RUN_PROMOTED, RUN_ANNOTATED)

_FILE = re.compile(r"^(?P<name>[a-z_]+)\.v(?P<version>\d+)\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    """One versioned schema file, parsed, with its fingerprint."""

    name: str
    version: int
    json: str
    parsed: Any
    fingerprint: bytes


def schema_files() -> dict[str, str]:
    """File name -> text of every Avro schema shipped with the package."""
    root = schema_folder()
    return {p.name: p.read_text("utf-8") for p in root.iterdir() if p.name.endswith(".avsc")}


def schema_folder() -> Traversable:
    """The package's one schema folder: ``schemas/`` at the top of the repository.

    ``src/runstream/_schemas`` is a symbolic link to it, which an editable install reads
    through and the wheel build follows (it stores the files under ``runstream/_schemas``).
    """
    return resources.files("runstream").joinpath("_schemas")


def read_schema_file(file_name: str) -> str:
    """Text of one file of the schema folder (the DDL, the queries, the views)."""
    return schema_folder().joinpath(file_name).read_text("utf-8")


@cache
def versions(name: str = EVENT_SCHEMA_NAME) -> tuple[SchemaVersion, ...]:
    """All versions of schema ``name``, oldest first."""
    found = []
    for file_name, text in schema_files().items():
        match = _FILE.match(file_name)
        if not match or match["name"] != name:
            continue
        parsed = fastavro.parse_schema(json.loads(text))
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
        found.append(SchemaVersion(name, int(match["version"]), text, parsed, fp))
    if not found:
        raise SchemaError(f"no schema files named {name}.v*.avsc in the package")
    return tuple(sorted(found, key=lambda v: v.version))


def latest(name: str = EVENT_SCHEMA_NAME) -> SchemaVersion:
    """The newest version: what this library writes."""
    return versions(name)[-1]


def by_fingerprint(fp: bytes, name: str = EVENT_SCHEMA_NAME) -> SchemaVersion:
    """The version whose CRC-64-AVRO fingerprint is ``fp``; SchemaError if none is known."""
    for v in versions(name):
        if v.fingerprint == fp:
            return v
    raise SchemaError(f"unknown writer schema fingerprint {fp.hex()}; upgrade runstream")


def encode(record: dict[str, Any], writer: SchemaVersion | None = None) -> bytes:
    """Encode ``record`` with the single-object header naming ``writer`` (default: newest)."""
    writer = writer or latest()
    buf = io.BytesIO()
    buf.write(MAGIC)
    buf.write(writer.fingerprint)
    fastavro.schemaless_writer(buf, writer.parsed, record)
    return buf.getvalue()


def split_header(data: bytes) -> tuple[bytes, bytes]:
    """Return (fingerprint, body) or raise SchemaError if ``data`` has no single-object header."""
    if len(data) < HEADER_SIZE or data[:2] != MAGIC:
        raise SchemaError("not an Avro single-object encoded event (bad or missing C3 01 header)")
    return data[2:HEADER_SIZE], data[HEADER_SIZE:]


def decode(data: bytes, reader: SchemaVersion | None = None) -> dict[str, Any]:
    """Decode an event written with any known version into ``reader``'s shape (default: newest)."""
    fp, body = split_header(data)
    writer = by_fingerprint(fp)
    reader = reader or latest()
    try:
        record = fastavro.schemaless_reader(io.BytesIO(body), writer.parsed, reader.parsed)
    except Exception as exc:
        raise SchemaError(f"event body does not decode with schema v{writer.version}") from exc
    if not isinstance(record, dict):
        raise SchemaError("an event must decode to a record")
    # fastavro turns the ``uuid`` logical type into uuid.UUID; everywhere else (Receipt, the
    # Spark decoder, the tables) an event id is its string, so decode to that.
    if isinstance(record.get("event_id"), uuid.UUID):
        record["event_id"] = str(record["event_id"])
    return record
