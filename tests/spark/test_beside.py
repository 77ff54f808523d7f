"""The log append's thread beside the rows' writes (``job._beside``).

A batch retried while its own log append still ran could log events twice, so the block must
not be left before the thread ends. Invariants: the thread's error is raised when the block
succeeds; when both fail, the block's error is raised, after the thread has ended, and the
thread's is logged.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from runstream.consumer import job


def test_thread_error_is_raised_after_the_block(spark: Any) -> None:
    def work() -> None:
        raise ValueError("log append failed")

    with pytest.raises(ValueError, match="log append failed"), job._beside(work):
        pass


def test_both_fail_the_block_error_wins_and_the_thread_ended(
    spark: Any, caplog: pytest.LogCaptureFixture
) -> None:
    release, ended = threading.Event(), threading.Event()

    def work() -> None:
        release.wait(30)
        ended.set()
        raise ValueError("log append failed")

    with (
        caplog.at_level(logging.WARNING, logger=job.__name__),
        pytest.raises(KeyError),
        job._beside(work),
    ):
        release.set()
        raise KeyError("rows write failed")
    assert ended.is_set(), "the block was left before the log append ended"
    assert "the log append failed too: log append failed" in caplog.text
