"""The dashboard in a real browser: headless Chromium opens the page ``runstream dashboard``
wrote from a table the job filled (a team's half year on two commodities, a promotion, a
demotion, quarantined records). The page must raise no console error, make no network
request, and every chart must hold drawn marks; a screenshot is saved (to
``$DASHBOARD_SCREENSHOT`` too, when set: that is how the README's picture is made).

Chromium comes from the system (Debian's ``chromium``, which ``.ci/run`` installs), driven by
Playwright without its own browser download. Without a Chromium the test skips, except in CI.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runstream.consumer.topics import fresh_topic
from runstream.devtools.testkit import fuzzed_poison, produce, team_history
from tests.spark.support import encoded, job_config, key_of, run_once

CHARTS_PER_COMMODITY = ("leaderboard", "mae-over-time", "runs-per-week", "accuracy-vs-mae",
                        "compute-and-cost")  # fmt: skip
POISON = 5

# Drawn marks per chart: Vega puts each data mark (bar, line, point, tick, text) in a group of
# class role-mark; axes, legends and titles use other roles. A mark counts when it has area
# or length on the page.
DRAWN_MARKS = """
figure => [...figure.querySelectorAll('g.role-mark > *')].filter(mark => {
    const box = mark.getBBox();
    return box.width > 0 || box.height > 0;
}).length
"""


CHART_NAME = "figure => figure.closest('section').id + '/' + figure.dataset.chart"


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("no Chromium on PATH: .ci/run installs Debian's chromium (apt-get)")
    pytest.skip("no Chromium on PATH (apt-get install chromium)")


@pytest.fixture(scope="module")
def page_file(spark: Any, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page ``runstream dashboard`` writes (light engine) over the job's tables."""
    root = tmp_path_factory.mktemp("browser")
    live, replay = fresh_topic(kafka_bootstrap, "dash-live"), fresh_topic(kafka_bootstrap, "rp")
    config = job_config(kafka_bootstrap, live, replay, root)
    rng = random.Random(11)
    events = team_history(rng)
    values = [encoded(e) for e in events]
    poison = [(live, b"poison", v) for _, v in fuzzed_poison(rng, values, POISON, oversized=0)]
    produce(kafka_bootstrap, [(live, key_of(e), v) for e, v in zip(events, values, strict=True)])
    produce(kafka_bootstrap, poison)
    run_once(spark, config)
    out = root / "dashboard.html"
    written = subprocess.run(
        [sys.executable, "-m", "runstream", "dashboard", "--engine", "light",
         "--lake", str(root / "lake"), "--output", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == f"wrote {out}"
    return out


def test_the_dashboard_draws_every_chart_offline_without_errors(
    page_file: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    url = page_file.as_uri()
    requests: list[str] = []
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)  # fmt: skip
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.goto(url, wait_until="load")
            charts = {
                figure.evaluate(CHART_NAME): figure.evaluate(DRAWN_MARKS)
                for figure in page.locator("figure.chart").all()
            }
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    assert problems == []
    assert requests == [url], "the page fetched something besides itself"
    expected = [f"{c}/{chart}" for c in ("coffee", "sugar") for chart in CHARTS_PER_COMMODITY]
    assert list(charts) == [*expected, "quarantine/quarantine"]
    assert all(marks > 0 for marks in charts.values()), charts
    # the runs-per-week chart has a bar for each active week of each commodity
    assert charts["coffee/runs-per-week"] == charts["sugar/runs-per-week"] == 16
    assert shot.stat().st_size > 50_000
    if os.environ.get("DASHBOARD_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["DASHBOARD_SCREENSHOT"])
