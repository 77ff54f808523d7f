"""A child process that emits batches with ``emit_runs``, to be killed or waited for.

Like ``runstream.devtools.testkit.EmittingChild`` (which emits one run at a time), but each
loop emits a batch of 1 to ``max_size`` runs of the seed (sizes drawn from ``seed``; then
sleeps ``pace_s``) and prints one line once ``emit_runs`` returned: the batch's event ids,
space-separated, in order.
A line is printed whole, so a complete line is a batch the child was told is durable.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_CHILD = """
import random, sys, time
from runstream import Emitter
from runstream.demo import seed_experiment

spool_dir, count, max_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seed, pace = int(sys.argv[4]), float(sys.argv[5])
if len(sys.argv) > 7:
    emitter = Emitter(spool_dir=spool_dir, bootstrap_servers=sys.argv[6], topic=sys.argv[7])
else:
    emitter = Emitter(spool_dir=spool_dir, send=False)
rng = random.Random(seed)
done = 0
while count <= 0 or done < count:
    receipts = emitter.emit_runs([seed_experiment() for _ in range(rng.randint(1, max_size))])
    sys.stdout.write(" ".join(r.event_id for r in receipts) + "\\n")
    sys.stdout.flush()
    done += 1
    if pace:
        time.sleep(pace)
"""


class BatchingChild:
    """Emits ``count`` batches (0: until killed) into ``spool_dir``; with ``bootstrap`` and
    ``topic`` its sender delivers (else ``send=False``)."""

    def __init__(
        self,
        spool_dir: Path,
        *,
        count: int = 0,
        max_size: int = 50,
        seed: int = 0,
        pace_s: float = 0.0,
        bootstrap: str | None = None,
        topic: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        target = [bootstrap, topic] if bootstrap and topic else []
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(spool_dir), str(count), str(max_size), str(seed),
             str(pace_s), *target],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        self.buffer = b""
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.fd, selectors.EVENT_READ)

    def batches(self) -> list[list[str]]:
        """The batches whose emit_runs returned: complete lines only."""
        return [line.decode().split() for line in self.buffer.split(b"\n")[:-1]]

    def poll(self) -> None:
        """Take in what it printed so far, without waiting."""
        self._read(0)

    def _read(self, timeout_s: float) -> bool:
        if self.selector.select(timeout=timeout_s):
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def read_until(self, batches: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.batches()) < batches:
            left = deadline - time.monotonic()
            assert left > 0, f"the child printed {len(self.batches())} of {batches} batches"
            if not self._read(left):
                stderr = self.proc.stderr.read() if self.proc.stderr else b""
                raise AssertionError(f"the child died: {stderr[-2000:]!r}")

    def _finish(self) -> None:
        while chunk := os.read(self.fd, 65536):
            self.buffer += chunk
        self.selector.close()
        self.proc.stdout.close()  # type: ignore[union-attr]
        self.proc.stderr.close()  # type: ignore[union-attr]

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._finish()

    def wait(self, timeout_s: float) -> None:
        """Read its output until it exits on its own; fails unless it exits 0."""
        deadline = time.monotonic() + timeout_s
        while self._read(max(0.0, deadline - time.monotonic())):
            assert time.monotonic() < deadline, f"the child did not exit within {timeout_s}s"
        code = self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        stderr = self.proc.stderr.read() if code else b""  # type: ignore[union-attr]
        self._finish()
        assert code == 0, f"the child exited with {code}: {stderr[-2000:]!r}"
