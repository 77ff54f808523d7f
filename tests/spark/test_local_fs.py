"""Local files go through runstream's Hadoop file system, with Hadoop's permissions.

Without Hadoop's native library, Hadoop's local file system starts a ``chmod`` process for each
file and folder it creates; ``runstream.jvm.local_fs_jar`` compiles one that sets permissions
in-process. Load: a Delta table partitioned in three, written by the session. Invariants: the
session's ``file:`` file system is runstream's; data files and their checksums are
``rw-r--r--`` and partition folders ``rwxr-xr-x`` (Hadoop's defaults under its 022 umask), as
stock Hadoop leaves them; the table reads back whole.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from runstream import jvm


def test_local_files_get_hadoop_permissions_without_chmod_processes(
    spark: Any, tmp_path: Path
) -> None:
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    assert conf.get("fs.file.impl") == jvm.LOCAL_FS_CLASS
    table = tmp_path / "t"
    rows = spark.range(30).selectExpr("id", "id % 3 AS part")
    rows.write.format("delta").partitionBy("part").save(str(table))

    data = sorted(table.glob("part=*/*.parquet"))
    checksums = sorted(table.glob("part=*/.*.crc"))
    assert len(data) >= 3 and checksums
    for path in [*data, *checksums]:
        assert stat.filemode(path.stat().st_mode) == "-rw-r--r--", path
    for folder in sorted(table.glob("part=*")):
        assert stat.filemode(folder.stat().st_mode) == "drwxr-xr-x", folder
    assert spark.read.format("delta").load(str(table)).count() == 30
    fs = spark._jvm.org.apache.hadoop.fs.FileSystem.get(spark._jvm.java.net.URI("file:///"), conf)
    assert fs.getClass().getName() == jvm.LOCAL_FS_CLASS
