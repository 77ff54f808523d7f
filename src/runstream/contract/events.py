"""Building events: a run (or a promotion, an annotation) as a record of the newest schema.

Every writer of events uses these two functions: ``emit_run``, ``runstream backfill``, the
tests and the benchmarks. ``prepare_run`` validates (``validation``); ``build_event`` wraps a
payload in the envelope and gives the event its id, once: a retry, a flush or a replay sends
the same id, which is how the consumer stores each event once.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from runstream._version import __version__
from runstream.contract.validation import DEFAULT_COMMODITIES, check_experiment_id, validate_run
from runstream.errors import ValidationError


def _producer_facts() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "library_version": __version__}


def build_event(
    event_type: str,
    experiment_id: str,
    *,
    run: dict[str, Any] | None = None,
    promotion: dict[str, Any] | None = None,
    annotation: dict[str, Any] | None = None,
    source: str = "emit",
    event_time: datetime | None = None,
) -> dict[str, Any]:
    """An event record in the newest schema's shape; its event_id is made here, once."""
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "event_time": event_time or datetime.now(timezone.utc),
        "experiment_id": experiment_id,
        "producer": _producer_facts(),
        "source": source,
        "run": run,
        "promotion": promotion,
        "annotation": annotation,
    }


def prepare_run(
    experiment: Mapping[str, Any] | None,
    fields: Mapping[str, Any] | None = None,
    *,
    commodities: Iterable[str] = DEFAULT_COMMODITIES,
) -> tuple[str, dict[str, Any]]:
    """Merge the dict and keyword forms, fill defaults, validate; (experiment_id, payload).

    Raises ValidationError listing every problem.
    """
    if experiment is not None and not isinstance(experiment, Mapping):
        raise ValidationError(
            [
                f"a run must be a dict of columns, got {type(experiment).__name__}; "
                "call emit_run(run_dict) or emit_run(model_name=..., ...)"
            ]
        )
    merged: dict[str, Any] = {**(experiment or {}), **(fields or {})}
    problems: list[str] = []
    experiment_id: str | None
    if merged.get("experiment_id") is None:
        experiment_id = str(uuid.uuid4())
    else:
        experiment_id, problem = check_experiment_id(merged["experiment_id"])
        if problem:
            problems.append(problem)
    if merged.get("run_timestamp") is None:
        merged["run_timestamp"] = datetime.now(timezone.utc)
    payload, run_problems = validate_run(merged, commodities=commodities)
    problems = [*problems, *run_problems]
    if problems:
        raise ValidationError(problems)
    assert experiment_id is not None
    return experiment_id, payload
