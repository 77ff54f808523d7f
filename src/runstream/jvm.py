"""Resolve the Java pieces runstream runs on (the dev broker, Spark's connectors) with Maven.

Each set is a small POM shipped in ``runstream/_jvm``. Its jars are copied into
``$RUNSTREAM_CACHE_DIR/jars/<set>`` together with a stamp holding the POM's hash, so a second
call is a file read, not a Maven run, and editing a version in a POM resolves afresh. One
piece is compiled instead of fetched: runstream's local file system for Hadoop
(``local_fs_jar``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import zipfile
from importlib import resources
from pathlib import Path

from runstream.environment_variables import RUNSTREAM_CACHE_DIR
from runstream.errors import SetupError

log = logging.getLogger(__name__)

KAFKA_BROKER = "kafka-broker"
SPARK_CONNECTORS = "spark-connectors"

# Pinned so Maven never looks the newest plugin up online.
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"


def _pom_text(name: str) -> str:
    return resources.files("runstream").joinpath(f"_jvm/{name}.pom.xml").read_text("utf-8")


def jar_dir(name: str, cache_dir: str | Path | None = None) -> Path:
    return RUNSTREAM_CACHE_DIR.get_path(cache_dir) / "jars" / name


def resolve(name: str, cache_dir: str | Path | None = None) -> list[Path]:
    """Return the jars of set ``name``, running Maven only when the cache is missing or stale."""
    pom = _pom_text(name)
    digest = hashlib.sha256(pom.encode()).hexdigest()
    target = jar_dir(name, cache_dir)
    stamp = target / ".resolved"
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return sorted(target.glob("*.jar"))

    mvn = shutil.which("mvn")
    if mvn is None:
        raise SetupError("Maven ('mvn') is not on PATH; install Maven 3.8+ to fetch the jars")
    log.info("resolving %s jars with Maven into %s", name, target)
    with tempfile.TemporaryDirectory(prefix=f"runstream-{name}-") as tmp:
        pom_path = Path(tmp) / "pom.xml"
        pom_path.write_text(pom, "utf-8")
        staging = Path(tmp) / "jars"
        cmd = [
            mvn, "-q", "-B", "-f", str(pom_path),
            f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SetupError(
                f"Maven could not resolve the {name} jars (exit {done.returncode}):\n"
                f"{' '.join(cmd)}\n{done.stdout[-4000:]}{done.stderr[-2000:]}"
            )
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, target)
    stamp.write_text(digest + "\n")
    return sorted(target.glob("*.jar"))


def java() -> str:
    """Path of the ``java`` executable, or a SetupError that says what to install."""
    found = shutil.which("java")
    if found is None:
        raise SetupError("Java ('java') is not on PATH; install a JDK 17 or newer")
    return found


LOCAL_FS = "local-fs"
LOCAL_FS_CLASS = "io.runstream.hadoop.NioLocalFileSystem"
"""Hadoop's ``file:`` file system with in-process chmod (``_jvm/local_fs``); ``local_fs_jar``
builds it."""


def local_fs_jar(cache_dir: str | Path | None = None) -> Path | None:
    """The jar of runstream's local file system for Hadoop, compiled once, or None.

    Without Hadoop's native library (pyspark ships none), Hadoop starts a ``chmod`` process
    for every file and folder it creates: writing 1,024 small files took 8 s instead of 1.5 s.
    ``_jvm/local_fs`` sets permissions in-process instead. It is compiled with the JDK's
    ``javac`` against pyspark's Hadoop jar and cached like the Maven sets (a stamp of the
    sources and that jar). None, and Spark keeps Hadoop's own, when no ``javac`` is on PATH
    (a JRE alone) or pyspark is missing: slower, never wrong.
    """
    javac = shutil.which("javac")
    try:
        import pyspark
    except ImportError:
        return None
    hadoop = sorted((Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar"))
    if javac is None or not hadoop:
        log.debug("no javac or no Hadoop jar: Spark keeps Hadoop's local file system")
        return None
    folder = resources.files("runstream").joinpath("_jvm/local_fs")
    sources = {s.name: s.read_bytes() for s in sorted(folder.iterdir(), key=lambda s: s.name)
               if s.name.endswith(".java")}  # fmt: skip
    digest = hashlib.sha256(hadoop[-1].name.encode())
    for name, text in sources.items():
        digest.update(name.encode() + b"\0" + text)
    target = jar_dir(LOCAL_FS, cache_dir)
    jar = target / f"runstream-local-fs-{digest.hexdigest()[:16]}.jar"
    if jar.is_file():
        return jar
    log.info("compiling runstream's local file system for Hadoop into %s", jar)
    with tempfile.TemporaryDirectory(prefix="runstream-local-fs-") as tmp:
        src, classes = Path(tmp) / "src", Path(tmp) / "classes"
        src.mkdir()
        for name, text in sources.items():
            (src / name).write_bytes(text)
        cmd = [javac, "--release", "17", "-nowarn", "-cp", str(hadoop[-1]), "-d", str(classes),
               *sorted(str(p) for p in src.iterdir())]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log.warning("javac failed (exit %d), Spark keeps Hadoop's local file system:\n%s",
                        done.returncode, (done.stdout + done.stderr)[-2000:])  # fmt: skip
            return None
        target.mkdir(parents=True, exist_ok=True)
        staged = Path(tmp) / jar.name
        with zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED) as out:
            for cls in sorted(classes.rglob("*.class")):
                out.write(cls, cls.relative_to(classes).as_posix())
        shutil.copyfile(staged, target / f".{jar.name}.{os.getpid()}")
        os.replace(target / f".{jar.name}.{os.getpid()}", jar)  # atomic: processes may race
    return jar
