"""Resolve the Java pieces runstream runs on (the dev broker, Spark's connectors) with Maven.

Each set is a small POM shipped in ``runstream/_jvm``. Its jars are copied into
``$RUNSTREAM_CACHE_DIR/jars/<set>`` together with a stamp holding the POM's hash, so a second
call is a file read, not a Maven run, and editing a version in a POM resolves afresh.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import tempfile
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
