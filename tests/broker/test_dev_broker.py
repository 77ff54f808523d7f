"""The development broker's commands, and the order in which tests choose a broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runstream.devtools import brokers
from runstream.devtools.kafka_broker import free_port, metadata_round_trip


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runstream", *args],
        capture_output=True, text=True, env=env, timeout=180, check=False,
    )  # fmt: skip


def test_kafka_up_status_down_from_a_shell(tmp_path: Path) -> None:
    env = {**os.environ, "RUNSTREAM_HOME": str(tmp_path)}
    port = str(free_port())
    up = _cli("kafka", "up", "--port", port, env=env)
    try:
        assert up.returncode == 0, up.stderr
        assert f"127.0.0.1:{port}" in up.stdout
        again = _cli("kafka", "up", "--port", port, env=env)
        assert again.returncode == 0 and "already running" in again.stdout
        # status and down find the broker that up started, without being told its port
        status = _cli("kafka", "status", "--json", env=env)
        assert status.returncode == 0 and '"answering": true' in status.stdout
        assert json.loads(status.stdout)["bootstrap"] == f"127.0.0.1:{port}"
        assert metadata_round_trip(f"127.0.0.1:{port}")
    finally:
        down = _cli("kafka", "down", env=env)
    assert down.returncode == 0 and "stopped" in down.stdout
    after = _cli("kafka", "status", env=env)
    assert after.returncode == 1 and "running: False" in after.stdout


def test_explicit_bootstrap_wins(monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str) -> None:
    monkeypatch.setenv(brokers.EXPLICIT_ENV, kafka_bootstrap)
    with brokers.any_broker() as (bootstrap, how):
        assert bootstrap == kafka_bootstrap
        assert how.startswith(brokers.EXPLICIT_ENV)


def test_testcontainers_broker_when_docker_answers() -> None:
    ok, why = brokers.docker_available()
    if not ok:
        pytest.skip(f"testcontainers path not exercised: {why}")
    with brokers.testcontainers_broker() as bootstrap:
        assert metadata_round_trip(bootstrap, timeout_s=30)
