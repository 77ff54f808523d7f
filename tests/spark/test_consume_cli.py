"""``runstream consume`` as a user runs it: a subprocess, its output, its exit code.

The issue "a quiet, informative consumer": every run used to end, normal end or Ctrl-C, with
two ``ERROR StreamingQueryListenerBus ... Py4JException`` stack traces, printed no summary, and
showed the JVM's start-up warnings. Now: one line per batch, a summary, no stack traces, exit
0 after ``--once`` and 130 after SIGINT, and the JVM's own output in ``$RUNSTREAM_HOME/logs``.

The JVM outlives the CLI by a moment and wrote those traces in that moment, so the log checks
wait until no process holds the log file as its stdout or stderr any more. Spark starts in each
subprocess (tens of seconds here), so there are only two tests, and each runs one CLI.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from runstream.devtools.testkit import produce
from tests.spark.support import T0, encoded, key_of, recorded

START_S = 300.0  # Spark start-up plus the first batch, on a busy 2-core machine
NOISE = ("Exception", "ERROR", "Traceback")
BATCH = re.compile(
    r"^batch (?P<id>\d+): (?P<records>\d+) record\(s\) in, (?P<valid>\d+) valid, "
    r"(?P<quarantined>\d+) quarantined, (?P<runs>\d+) run row\(s\) written, [\d.]+s, "
    r"lag (?P<lag>\d+|n/a)$"
)


def _produce_runs(bootstrap: str, topic: str, valid: int) -> None:
    """``valid`` run_recorded events and one record that is not an event at all."""
    events = [recorded(str(uuid.uuid4()), T0, mae_14day=1.0 + i) for i in range(valid)]
    records: list[tuple[str, bytes | None, bytes | None]] = [
        (topic, key_of(e), encoded(e)) for e in events
    ]
    records.append((topic, b"garbage", b"this is not an Avro event"))
    assert produce(bootstrap, records) == valid + 1


def _consume(bootstrap: str, tmp_path: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "runstream", "consume", "--bootstrap-servers", bootstrap,
        "--lake", str(tmp_path / "lake"), "--checkpoint", str(tmp_path / "checkpoint"), *extra,
    ]  # fmt: skip


def _env(tmp_path: Path, new_topic: Callable[..., str]) -> tuple[dict[str, str], str]:
    """The CLI's environment: its own home (so its own JVM log) and fresh topics."""
    live, replay = new_topic("cli-live"), new_topic("cli-replay")
    env = {**os.environ, "RUNSTREAM_HOME": str(tmp_path / "home"),
           "RUNSTREAM_TOPIC": live, "RUNSTREAM_REPLAY_TOPIC": replay}  # fmt: skip
    return env, live


def _noise(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(word in line for word in NOISE)]


def _holders(path: Path) -> list[str]:
    """Processes that have ``path`` as stdout or stderr (Linux /proc)."""
    target = str(path)
    found = []
    for fd in Path("/proc").glob("[0-9]*/fd/[12]"):
        try:
            if os.readlink(fd) == target:
                found.append(fd.parent.parent.name)
        except OSError:  # gone meanwhile, or another user's process
            continue
    return found


def _jvm_log_after_exit(tmp_path: Path) -> str:
    """The JVM log once the JVM that wrote it has exited (it holds it as stdout and stderr)."""
    log = tmp_path / "home" / "logs" / "spark.log"
    assert log.is_file(), "the JVM's output did not go to $RUNSTREAM_HOME/logs/spark.log"
    deadline = time.monotonic() + 60
    while _holders(log):
        assert time.monotonic() < deadline, f"the JVM still holds {log} a minute after the CLI"
        time.sleep(0.1)
    return log.read_text()


def _check_jvm_log(text: str) -> None:
    assert "log4j" in text, "the JVM's start-up banner is not in the log"
    errors = [line for line in text.splitlines() if " ERROR " in line or "Py4J" in line]
    assert not errors, "the JVM logged errors:\n" + "\n".join(errors)


def test_once_prints_one_line_per_batch_and_a_summary_and_nothing_else(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    env, live = _env(tmp_path, new_topic)
    _produce_runs(kafka_bootstrap, live, valid=3)

    done = subprocess.run(
        _consume(kafka_bootstrap, tmp_path, "--once"),
        capture_output=True, text=True, env=env, timeout=START_S,
    )  # fmt: skip

    shown = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, shown
    assert not _noise(done.stdout + done.stderr), shown
    # The JVM's start-up warnings went to the log file, not to the terminal.
    assert "NativeCodeLoader" not in done.stderr and "log4j" not in done.stderr, shown
    lines = done.stdout.splitlines()
    assert len(lines) == 2, shown
    batch = BATCH.match(lines[0])
    assert batch is not None, shown
    assert (batch["id"], batch["records"], batch["valid"], batch["quarantined"],
            batch["runs"]) == ("0", "4", "3", "1", "3"), shown  # fmt: skip
    assert batch["lag"] == "0", shown  # availableNow read up to the newest offsets
    runs_table = f"delta.`{(tmp_path / 'lake' / 'model_runs').absolute()}`"
    assert re.fullmatch(
        r"consumed 1 batch\(es\): 4 record\(s\), 3 valid, 1 quarantined, 3 run row\(s\) "
        rf"written in [\d.]+s; {re.escape(runs_table)} now holds 3 run\(s\)",
        lines[1],
    ), shown
    _check_jvm_log(_jvm_log_after_exit(tmp_path))


def _lines(stream: IO[str]) -> queue.Queue[str | None]:
    """Lines of ``stream`` as they come, read by a thread; ``None`` at the end."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _next_json(lines: queue.Queue[str | None], deadline: float, seen: list[str]) -> Any:
    """The next line, parsed; fails at the deadline or at the end of the output."""
    line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
    assert line is not None, "the CLI's output ended early:\n" + "\n".join(seen)
    seen.append(line)
    return json.loads(line)


def test_ctrl_c_stops_the_job_with_a_summary_and_exit_code_130(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    env, live = _env(tmp_path, new_topic)
    _produce_runs(kafka_bootstrap, live, valid=2)

    # A session of its own, so that SIGINT can go to the whole process group as a terminal's
    # Ctrl-C does: the CLI and the JVM it starts.
    proc = subprocess.Popen(
        _consume(kafka_bootstrap, tmp_path, "--trigger-seconds", "1", "--json"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stderr is not None
        out, err = _lines(proc.stdout), _lines(proc.stderr)
        seen: list[str] = []
        try:
            first = _next_json(out, time.monotonic() + START_S, seen)
        except queue.Empty:
            raise AssertionError(f"no batch line within {START_S}s") from None
        assert first["type"] == "batch", seen
        assert (first["records_in"], first["valid"], first["quarantined"],
                first["runs_written"]) == (3, 2, 1, 2), seen  # fmt: skip

        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=120) == 130
        summary = _next_json(out, time.monotonic() + 10, seen)
        assert summary["type"] == "summary", seen
        assert summary["interrupted"] is True
        assert (summary["batches"], summary["records_in"], summary["valid"],
                summary["quarantined"], summary["runs_written"],
                summary["runs_in_table"]) == (1, 3, 2, 1, 2, 2), seen  # fmt: skip
        assert out.get(timeout=10) is None, "more output after the summary"
        errors = []
        while (line := err.get(timeout=10)) is not None:
            errors.append(line)
        assert not _noise("\n".join(seen + errors)), "\n".join(seen + errors)
    finally:
        if proc.poll() is None:  # a failed test: take the CLI and its JVM down
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _check_jvm_log(_jvm_log_after_exit(tmp_path))
