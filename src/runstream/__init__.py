"""runstream: event-sourced experiment tracking for forecasting teams.

``emit_run()`` makes a run durable on local disk at once (``emit_runs()`` a batch of them, with
one disk sync) and sends it to Kafka when the network allows; a Spark job keeps the
``model_runs`` Delta table. Importing this package never imports Spark and never touches the
network.
"""

from __future__ import annotations

import logging

from runstream._version import __version__
from runstream.errors import (
    RunstreamError,
    SchemaError,
    SpoolError,
    SpoolFullError,
    ValidationError,
)
from runstream.producer.context import tracked_run
from runstream.producer.emitter import Emitter, Receipt, emit_run, emit_runs, flush

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Emitter",
    "Receipt",
    "RunstreamError",
    "SchemaError",
    "SpoolError",
    "SpoolFullError",
    "ValidationError",
    "__version__",
    "emit_run",
    "emit_runs",
    "flush",
    "tracked_run",
]
