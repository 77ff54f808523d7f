"""A walk-forward backtest that records its runs in batches with ``emit_runs()``.

The seed's backtester, made concrete: for each commodity, each of ``windows`` forecast origins
14 trading days apart (the newest ending at the data's end), and each of the 25 models of
``runstream.examples.models.REGISTRY``, fit the model to the 750 trading days up to the origin,
forecast the next 14, score the forecast against what happened and against the naive forecast
(``runstream.metrics.evaluate``: MAE at 1, 7 and 14 days, RMSE, MAPE, directional accuracy, the
Diebold-Mariano test), and record the run. 40 windows x 25 models x 2 commodities is the
seed's plan: 2,000 runs.

Run it (after ``pip install 'runstream[examples]'``, with a broker: ``runstream kafka up``)::

    python examples/walk_forward.py --windows 40     # or: python -m runstream.examples.walk_forward
    runstream consume --once                        # the streaming job, once
    runstream query history --commodity WTI

Fits run in worker processes (``--workers``, default one per core); the parent process scores
each forecast and records the runs of one forecast origin together, with one ``emit_runs()``
call once the origin's last fit has returned: one spool file and one disk sync per origin
instead of one per run, and an origin's runs reach the spool all at once or not at all. The
parent fills the columns ``tracked_run`` would: ``run_timestamp`` (when the forecast was
scored), ``hardware_config``, ``databricks_cluster_id`` (on Databricks), ``run_by`` and
``cost_estimate_usd``; ``execution_time_seconds`` is the fit and forecast time measured in the
worker. A fit that raises is skipped and counted, never fatal; statsmodels' convergence
warnings go into the run's ``notes``.

The commodities are ``WTI`` (real prices; added to ``RUNSTREAM_COMMODITIES`` for this process,
since the default list is Coffee and Sugar) and ``Coffee`` (a SYNTHETIC series, labelled so in
each run's ``data_version`` and ``notes``); see ``runstream.examples.prices`` for the data's
source and licence.

``beats_baseline`` is the verdict of the Diebold-Mariano test on one window's 14 daily squared
error differences against the naive forecast (``evaluate``'s one-window case): those days share
a forecast origin, so the p-value is optimistic, and a model "beats" naive in some windows by
chance. Judge a model over its windows (the seed's pruning query counts runs that do not beat
the baseline), not by one run.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from runstream import environment_variables as env
from runstream.errors import ValidationError
from runstream.examples import models, prices

if TYPE_CHECKING:
    from runstream.producer.emitter import Emitter, Receipt

log = logging.getLogger(__name__)

HORIZON = 14  # trading days: forecast_horizon_days
STEP = 14  # trading days between forecast origins, so test windows never overlap
LOOKBACK = 750  # trading days of training data (about three years)
MODEL_VERSION = "v1"


@dataclass(frozen=True)
class Window:
    """One forecast origin: train on ``[start, end)``, forecast ``[end, end + HORIZON)``."""

    number: int  # 1 = oldest
    of: int
    start: int
    end: int


def walk(length: int, count: int, *, lookback: int = LOOKBACK, step: int = STEP,
         horizon: int = HORIZON) -> list[Window]:  # fmt: skip
    """``count`` windows over a series of ``length`` prices, oldest first, the newest forecast
    ending on the last price."""
    if count < 1:
        raise ValueError(f"windows must be at least 1, got {count}")
    first_end = length - horizon - (count - 1) * step
    if first_end - lookback < 0:
        most = (length - horizon - lookback) // step + 1
        raise ValueError(
            f"{count} windows of {lookback} training days, {step} days apart, need "
            f"{lookback + horizon + (count - 1) * step} prices; the series has {length} "
            f"(at most {most} windows)"
        )
    ends = [first_end + i * step for i in range(count)]
    return [Window(i + 1, count, end - lookback, end) for i, end in enumerate(ends)]


@dataclass
class Summary:
    """What a backtest did."""

    planned: int = 0
    emitted: int = 0  # runs recorded in the spool
    batches: int = 0  # emit_runs calls: one per window with a run to record
    failed: list[str] = field(default_factory=list)  # "commodity model window: error"
    not_converged: int = 0
    seconds: float = 0.0
    workers: int = 0
    experiment_ids: list[str] = field(default_factory=list)
    beats_baseline: Counter[str] = field(default_factory=Counter)  # runs per commodity

    def lines(self) -> Iterator[str]:
        rate = self.emitted / self.seconds if self.seconds else 0.0
        yield (
            f"{self.emitted} of {self.planned} runs emitted with emit_runs() in {self.batches} "
            f"batches, one per window, in {self.seconds:.1f} s ({rate:.1f} runs/s, "
            f"{self.workers} worker processes); {len(self.failed)} fits failed and were "
            f"skipped; {self.not_converged} runs noted as not converged"
        )
        for commodity, wins in sorted(self.beats_baseline.items()):
            yield f"  {commodity}: {wins} runs beat the naive forecast (DM test, p < 0.05)"
        for failure in self.failed[:10]:
            yield f"  failed: {failure}"
        if len(self.failed) > 10:
            yield f"  ... and {len(self.failed) - 10} more failures"


def tags_column() -> bool:
    """Whether ``model_runs`` has a ``tags`` column (a string map) for the registry's
    ``experiment_tags``. They are passed to ``emit_runs`` only then; an older contract
    would refuse the unknown field."""
    from runstream.contract.fields import run_fields

    return any(f.name == "tags" and f.sql_type == "MAP<STRING, STRING>" for f in run_fields())


def _tags(entry: Mapping[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v)
            for k, v in entry["experiment_tags"].items()}  # fmt: skip


_WindowKey = tuple[str, int]  # (commodity, window number): the runs recorded together


@dataclass(frozen=True)
class _Scored:
    """One run ready to record, and what the summary counts of it."""

    label: str  # "WTI arima_111 window 3/40", for messages
    columns: dict[str, Any]
    not_converged: bool


class _Batches:
    """Holds each window's scored runs until the window's last fit has returned, then records
    them with one ``emit_runs`` call and counts them in the summary.

    Why by window: a window's runs are one unit of the backtest (every model on the same
    training data), ``emit_runs`` makes them durable with one disk sync instead of one per run,
    and they reach the spool together, or not at all when one is invalid. Runs wait in memory
    only until their window is complete: a few windows at most, as the pool takes the fits in
    plan order, window by window.
    """

    def __init__(
        self,
        emit: Callable[[list[dict[str, Any]]], list[Receipt]],
        fits_per_window: int,
        summary: Summary,
    ) -> None:
        self._emit = emit
        self._fits_per_window = fits_per_window
        self._summary = summary
        self._waiting: dict[_WindowKey, list[_Scored]] = defaultdict(list)
        self._returned: Counter[_WindowKey] = Counter()

    def returned(self, window: _WindowKey, scored: _Scored | None) -> None:
        """One fit of ``window`` has returned: ``scored`` is its run, None when the fit
        failed (nothing to record, but the window is one fit nearer complete)."""
        if scored is not None:
            self.hold(window, scored)
        self._returned[window] += 1
        if self._returned[window] == self._fits_per_window:
            self._record(self._waiting.pop(window, []))

    def hold(self, window: _WindowKey, scored: _Scored) -> None:
        """Keep ``scored`` with its window's runs without counting a fit (leaving the ``with``
        block records it)."""
        self._waiting[window].append(scored)

    def __enter__(self) -> _Batches:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        """Record the windows still waiting for fits: when the backtest stops early (an error,
        Ctrl-C), its finished fits are not thrown away. While an exception propagates, a batch
        that cannot be recorded is logged, never raised over that exception."""
        for window in list(self._waiting):
            try:
                self._record(self._waiting.pop(window))
            except Exception:
                if kind is None:
                    raise
                log.exception("could not record the finished runs of %s window %d", *window)

    def _record(self, runs: list[_Scored]) -> None:
        if not runs:
            return  # every fit of the window failed
        try:
            receipts = self._emit([run.columns for run in runs])
        except ValidationError as exc:
            raise _named(exc, [run.label for run in runs]) from exc
        summary = self._summary
        summary.batches += 1
        summary.emitted += len(receipts)
        summary.experiment_ids += [receipt.experiment_id for receipt in receipts]
        for run in runs:
            summary.not_converged += run.not_converged
            summary.beats_baseline[run.columns["commodity"]] += bool(
                run.columns.get("beats_baseline")
            )


def _named(exc: ValidationError, labels: Sequence[str]) -> ValidationError:
    """``exc`` with each ``runs[i]: `` prefix of ``emit_runs`` replaced by that run's label:
    an index into a batch the user never sees says nothing; "WTI arima_111 window 3/40" does."""

    def name(problem: str) -> str:
        index = re.match(r"runs\[(\d+)\]: ", problem)
        return f"{labels[int(index[1])]}: {problem[index.end() :]}" if index else problem

    return ValidationError([name(problem) for problem in exc.problems])


def run(
    *,
    windows: int = 40,
    commodities: Sequence[str] = prices.COMMODITIES,
    model_names: Sequence[str] | None = None,
    workers: int | None = None,
    lookback: int = LOOKBACK,
    step: int = STEP,
    emitter: Emitter | None = None,
    run_by: str | None = None,
    progress: bool | None = None,
) -> Summary:
    """Backtest ``model_names`` (default: the whole registry) on ``commodities`` over
    ``windows`` origins, recording one run per model, window and commodity with one
    ``emit_runs`` call per window, through ``emitter`` (default: ``runstream.emit_runs``'s).
    ``progress``: a progress bar on stderr (default: when stderr is a terminal). Returns the
    summary; runs left unsent are in the spool.

    Raises ValidationError (a ValueError) naming the bad runs when a window's runs are
    refused; nothing of that window is written, and the windows already complete are kept."""
    from tqdm import tqdm

    from runstream import emit_runs
    from runstream.metrics import evaluate
    from runstream.producer import context

    names = list(models.REGISTRY) if model_names is None else list(model_names)
    unknown = [n for n in names if n not in models.REGISTRY]
    if unknown:
        raise ValueError(f"unknown models {unknown}; the registry has {list(models.REGISTRY)}")
    series = {c: prices.load(c) for c in commodities}
    plan = [(c, w, n) for c in commodities for w in walk(len(series[c]), windows,
            lookback=lookback, step=step) for n in names]  # fmt: skip
    workers = workers or os.cpu_count() or 1
    summary = Summary(planned=len(plan), workers=workers)
    # The columns tracked_run would fill, once for every run. The price table is read first,
    # so a broken RUNSTREAM_PRICE_TABLE fails before the backtest, not after it.
    usd_per_hour = context.price_table()
    cluster = context.cluster_id()
    infrastructure: dict[str, Any] = {
        "hardware_config": f"{context.hardware_config()}; {workers} worker processes",
        "run_by": run_by or context.run_by(),
        **({"databricks_cluster_id": cluster} if cluster else {}),
    }
    with_tags = tags_column()
    batches = _Batches(emit_runs if emitter is None else emitter.emit_runs, len(names), summary)
    began = time.perf_counter()
    bar = tqdm(total=len(plan), unit="run", file=sys.stderr, dynamic_ncols=True,
               disable=not (sys.stderr.isatty() if progress is None else progress))  # fmt: skip
    # spawn, not fork: the parent may run threads (the emitter's sender, a Kafka client)
    spawn = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=spawn, initializer=models.start_worker)
    with pool, batches:
        futures: dict[Future[models.Fitted], tuple[str, Window, str]] = {
            pool.submit(models.fit_forecast, name, c, w.start, w.end, HORIZON): (c, w, name)
            for c, w, name in plan
        }
        for future in as_completed(futures):
            commodity, window, name = futures[future]
            fitted = future.result()
            bar.update()
            key = (commodity, window.number)
            label = f"{commodity} {name} window {window.number}/{window.of}"
            if fitted.forecast is None:
                summary.failed.append(f"{label}: {fitted.error}")
                batches.returned(key, None)
                continue
            data = series[commodity]
            entry = models.REGISTRY[name]
            actual = data.values[window.end : window.end + HORIZON]
            last = float(data.values[window.end - 1])
            origin = data.dates[window.end - 1]
            notes = [
                f"walk-forward window {window.number}/{window.of}: trained on "
                f"{window.end - window.start} trading days to {origin}, forecast the next "
                f"{HORIZON} ({data.dates[window.end]}..{data.dates[window.end + HORIZON - 1]})",
                *([prices.SYNTHETIC_NOTE] if data.synthetic else []),
                *fitted.notes,
            ]
            columns: dict[str, Any] = {
                "model_name": name,
                "model_version": MODEL_VERSION,
                "model_type": entry["type"],
                "hyperparameters": entry["params"],
                "feature_config": models.feature_config(entry["params"]),
                "data_version": data.data_version,
                "training_start_date": str(data.dates[window.start]),
                "training_end_date": str(origin),
                "forecast_horizon_days": HORIZON,
                "commodity": commodity,
                "run_timestamp": datetime.now(timezone.utc),  # scored now, recorded later
                "execution_time_seconds": fitted.seconds,  # the fit, in the worker
                "cost_estimate_usd": context.cost_estimate(fitted.seconds, prices=usd_per_hour),
                **infrastructure,
                "notes": "\n".join(notes),
            }
            if with_tags:
                columns["tags"] = _tags(entry)
            scored = _Scored(label, columns, bool(fitted.notes))
            try:
                columns.update(
                    evaluate(actual, fitted.forecast, [last] * HORIZON, last_observed=last)
                )
            except BaseException as exc:
                # As tracked_run did: the run is recorded with what is known and the
                # error in its notes, and the error stops the backtest.
                columns["notes"] += f"\nrun failed: {type(exc).__name__}: {exc}"
                batches.hold(key, scored)
                raise
            batches.returned(key, scored)
    bar.close()
    summary.seconds = time.perf_counter() - began
    return summary


def describe(commodities: Sequence[str], windows: int, model_names: Sequence[str]) -> list[str]:
    """What a backtest will do, one line per commodity after the first."""
    return [
        f"walk-forward: {len(commodities)} commodities x {windows} windows x "
        f"{len(model_names)} models = {len(commodities) * windows * len(model_names)} runs, "
        f"{HORIZON}-trading-day horizon, {LOOKBACK}-day training windows {STEP} days apart",
        *(f"  {c}: {prices.load(c).description}" for c in commodities),
    ]


def allow_commodities(commodities: Sequence[str]) -> tuple[str, ...]:
    """The configured commodity list plus ``commodities`` (WTI is not in the default list)."""
    return tuple(dict.fromkeys([*env.commodities(), *commodities]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="walk_forward", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--windows",
        type=int,
        default=40,
        help="forecast origins per commodity (default: 40, the seed's plan)",
    )
    parser.add_argument(
        "--models", default="", help="comma-separated model names (default: all 25 of the registry)"
    )
    parser.add_argument(
        "--commodities",
        default=",".join(prices.COMMODITIES),
        help=f"comma separated (default: {','.join(prices.COMMODITIES)})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="worker processes for the fits (default: one per core)",
    )
    parser.add_argument(
        "--run-by",
        default=None,
        help="model_runs.run_by (default: $RUNSTREAM_RUN_BY, else your user)",
    )
    parser.add_argument("--flush-timeout", type=float, default=120.0,
                        help="seconds to wait at the end for Kafka to acknowledge the runs "
                        "(default: 120); what is left stays in the spool")  # fmt: skip
    args = parser.parse_args(argv)
    commodities = [c.strip() for c in args.commodities.split(",") if c.strip()]
    names = [m.strip() for m in args.models.split(",") if m.strip()] or list(models.REGISTRY)

    # This process may record WTI runs: add it to the commodity list emit_runs checks.
    os.environ[env.RUNSTREAM_COMMODITIES.name] = ",".join(allow_commodities(commodities))
    from runstream import flush
    from runstream.producer.emitter import default_emitter

    for line in describe(commodities, args.windows, names):
        print(line, flush=True)
    try:
        summary = run(windows=args.windows, commodities=commodities, model_names=names,
                      workers=args.workers or None, run_by=args.run_by)  # fmt: skip
    except ValueError as exc:
        print(f"walk_forward: {exc}", file=sys.stderr)
        return 2
    for line in summary.lines():
        print(line, flush=True)
    began = time.perf_counter()
    left = flush(args.flush_timeout)
    sent = summary.emitted - left
    where = default_emitter().bootstrap_servers
    print(
        f"{sent} runs acknowledged by Kafka at {where} in {time.perf_counter() - began:.1f} s"
        + (f"; {left} wait in the spool (`runstream spool flush` sends them)" if left else "")
    )
    print("next: `runstream consume --once` folds them into model_runs; then "
          "`runstream query history --commodity WTI`")  # fmt: skip
    return 0 if not left and not summary.failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
