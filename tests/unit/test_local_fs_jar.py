"""``jvm.local_fs_jar``: compiled once, reused, and optional.

Load: the package's Java sources, compiled by the machine's javac against pyspark's Hadoop
jar into a temporary cache. Invariants: a second call returns the same jar without compiling;
the jar holds both classes; with no javac on PATH the answer is None (Spark then keeps
Hadoop's own file system), never an error.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from runstream import jvm


def test_compiled_once_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("javac") is None:
        pytest.skip("no javac on PATH")
    jar = jvm.local_fs_jar(tmp_path)
    assert jar is not None and jar.is_file()
    names = set(zipfile.ZipFile(jar).namelist())
    assert {"io/runstream/hadoop/NioLocalFileSystem.class",
            "io/runstream/hadoop/NioRawLocalFileSystem.class"} <= names  # fmt: skip

    def no_compiling(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"compiled again: {args}")

    monkeypatch.setattr(subprocess, "run", no_compiling)
    assert jvm.local_fs_jar(tmp_path) == jar


def test_no_javac_means_hadoops_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert jvm.local_fs_jar(tmp_path) is None
    assert not (tmp_path / "jars").exists()
