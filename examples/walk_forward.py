"""A walk-forward backtest that records every run with ``emit_run()``.

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
each forecast and emits its run inside ``tracked_run``, which fills ``run_timestamp``,
``hardware_config``, ``run_by`` and ``cost_estimate_usd``; ``execution_time_seconds`` is the
fit and forecast time measured in the worker. A fit that raises is skipped and counted, never
fatal; statsmodels' convergence warnings go into the run's ``notes``.

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
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runstream import environment_variables as env
from runstream.examples import models, prices

if TYPE_CHECKING:
    from runstream.producer.emitter import Emitter

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
    emitted: int = 0
    failed: list[str] = field(default_factory=list)  # "commodity model window: error"
    not_converged: int = 0
    seconds: float = 0.0
    workers: int = 0
    experiment_ids: list[str] = field(default_factory=list)
    beats_baseline: Counter[str] = field(default_factory=Counter)  # runs per commodity

    def lines(self) -> Iterator[str]:
        rate = self.emitted / self.seconds if self.seconds else 0.0
        yield (
            f"{self.emitted} of {self.planned} runs emitted with emit_run() in "
            f"{self.seconds:.1f} s ({rate:.1f} runs/s, {self.workers} worker processes); "
            f"{len(self.failed)} fits failed and were skipped; {self.not_converged} runs noted "
            "as not converged"
        )
        for commodity, wins in sorted(self.beats_baseline.items()):
            yield f"  {commodity}: {wins} runs beat the naive forecast (DM test, p < 0.05)"
        for failure in self.failed[:10]:
            yield f"  failed: {failure}"
        if len(self.failed) > 10:
            yield f"  ... and {len(self.failed) - 10} more failures"


def tags_column() -> bool:
    """Whether ``model_runs`` has a ``tags`` column (a string map) for the registry's
    ``experiment_tags``. They are passed to ``emit_run`` only then; an older contract
    would refuse the unknown field."""
    from runstream.contract.fields import run_fields

    return any(f.name == "tags" and f.sql_type == "MAP<STRING, STRING>" for f in run_fields())


def _tags(entry: Mapping[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v)
            for k, v in entry["experiment_tags"].items()}  # fmt: skip


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
    ``windows`` origins, emitting one run per model, window and commodity through ``emitter``
    (default: ``emit_run``'s). ``progress``: a progress bar on stderr (default: when stderr
    is a terminal). Returns the summary; runs left unsent are in the spool."""
    from tqdm import tqdm

    from runstream import tracked_run
    from runstream.metrics import evaluate
    from runstream.producer.context import hardware_config

    names = list(models.REGISTRY) if model_names is None else list(model_names)
    unknown = [n for n in names if n not in models.REGISTRY]
    if unknown:
        raise ValueError(f"unknown models {unknown}; the registry has {list(models.REGISTRY)}")
    series = {c: prices.load(c) for c in commodities}
    plan = [(c, w, n) for c in commodities for w in walk(len(series[c]), windows,
            lookback=lookback, step=step) for n in names]  # fmt: skip
    workers = workers or os.cpu_count() or 1
    summary = Summary(planned=len(plan), workers=workers)
    hardware = f"{hardware_config()}; {workers} worker processes"
    with_tags = tags_column()
    began = time.perf_counter()
    bar = tqdm(total=len(plan), unit="run", file=sys.stderr, dynamic_ncols=True,
               disable=not (sys.stderr.isatty() if progress is None else progress))  # fmt: skip
    # spawn, not fork: the parent may run threads (the emitter's sender, a Kafka client)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=models.start_worker) as pool:
        futures: dict[Future[models.Fitted], tuple[str, Window, str]] = {
            pool.submit(models.fit_forecast, name, c, w.start, w.end, HORIZON): (c, w, name)
            for c, w, name in plan
        }
        for future in as_completed(futures):
            commodity, window, name = futures[future]
            fitted = future.result()
            bar.update()
            label = f"{commodity} {name} window {window.number}/{window.of}"
            if fitted.forecast is None:
                summary.failed.append(f"{label}: {fitted.error}")
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
                "hardware_config": hardware,
                "notes": "\n".join(notes),
            }
            if run_by:
                columns["run_by"] = run_by
            if with_tags:
                columns["tags"] = _tags(entry)
            with tracked_run(emitter, **columns) as recorded:
                recorded.update(
                    evaluate(actual, fitted.forecast, [last] * HORIZON, last_observed=last)
                )
                recorded["execution_time_seconds"] = fitted.seconds
            summary.emitted += 1
            summary.experiment_ids.append(recorded["experiment_id"])
            summary.not_converged += bool(fitted.notes)
            summary.beats_baseline[commodity] += bool(recorded["beats_baseline"])
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

    # This process may record WTI runs: add it to the commodity list emit_run checks.
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
