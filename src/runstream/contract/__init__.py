"""The contract both halves share: the event schemas, the run's fields, building events.

- ``wire``: schema versions and the single-object wire format (``encode``, ``decode``);
- ``fields``: the table of the run's fields and their rules, from which the producer's
  validation, the consumer's checks and the table's DDL derive;
- ``validation``: one checker per rule, ``validate_run``;
- ``events``: ``prepare_run`` and ``build_event``, used by every writer of events.

Needs fastavro and the standard library only.
"""

from __future__ import annotations

from runstream.contract.events import build_event, prepare_run
from runstream.contract.wire import (
    EVENT_SCHEMA_NAME,
    EVENT_TYPES,
    HEADER_SIZE,
    MAGIC,
    RUN_ANNOTATED,
    RUN_PROMOTED,
    RUN_RECORDED,
    SchemaVersion,
    by_fingerprint,
    decode,
    encode,
    latest,
    read_schema_file,
    schema_files,
    schema_folder,
    split_header,
    versions,
)

__all__ = [
    "EVENT_SCHEMA_NAME",
    "EVENT_TYPES",
    "HEADER_SIZE",
    "MAGIC",
    "RUN_ANNOTATED",
    "RUN_PROMOTED",
    "RUN_RECORDED",
    "SchemaVersion",
    "build_event",
    "by_fingerprint",
    "decode",
    "encode",
    "latest",
    "prepare_run",
    "read_schema_file",
    "schema_files",
    "schema_folder",
    "split_header",
    "versions",
]
