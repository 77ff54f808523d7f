"""A real Apache Kafka broker (KRaft, combined mode) run as a plain Java process.

This machine class has no Docker engine, so the development and test broker is built from Maven
Central jars (see ``runstream/_jvm/kafka-broker.pom.xml``). Everything it writes (properties,
data, log, pid) lives in one state folder, so ``up``/``status``/``down`` from separate shells
agree on which broker they mean.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from runstream import jvm
from runstream.errors import BrokerError

log = logging.getLogger(__name__)

_LOG4J = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited child not yet reaped) is not a running broker.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True


def _cluster_id() -> str:
    """A KRaft cluster id: 22 URL-safe base64 characters of a UUID. Like Kafka's own
    ``Uuid.randomUuid``, never one starting with '-', which the format tool reads as a flag."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def metadata_round_trip(bootstrap: str, timeout_s: float = 10.0) -> bool:
    """True when the broker answers a metadata request (a listening port is not enough)."""
    from kafka import KafkaAdminClient  # local: keep `import runstream` free of kafka's imports

    port = bootstrap.rpartition(":")[2]
    if not _port_open(int(port)):
        return False
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout_s * 1000),
            client_id="runstream-probe",
        )
    except Exception:
        return False
    try:
        admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        admin.close()


@dataclass(frozen=True)
class LocalBroker:
    """One broker's state folder and ports. ``up()`` is idempotent per state folder."""

    state_dir: Path
    port: int = 9092
    controller_port: int = 9093

    @classmethod
    def in_folder(cls, state_dir: Path, port: int | None = None) -> LocalBroker:
        """The broker of ``state_dir``: on ``port`` if given, else on the ports its last
        ``up()`` recorded there (so ``status`` and ``down`` need no ``--port``), else 9092."""
        if port is None:
            try:
                port, controller = (int(p) for p in (state_dir / "ports").read_text().split())
            except (OSError, ValueError):
                port, controller = 9092, 9093
            return cls(state_dir, port=port, controller_port=controller)
        return cls(state_dir, port=port, controller_port=port + 1)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "broker.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _pid_alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    def _write_config(self) -> Path:
        data = self.state_dir / "data"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "message.max.bytes": str(8 * 1024 * 1024),
        }
        path = self.state_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.state_dir / "log4j2.properties").write_text(_LOG4J.format(log_file=self.log_file))
        return path

    def _java_cmd(self, main_class: str, *args: str, heap: str = "512m") -> list[str]:
        classpath = str(jvm.jar_dir(jvm.KAFKA_BROKER) / "*")
        return [
            jvm.java(),
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.state_dir / 'log4j2.properties'}",
            "-cp",
            classpath,
            main_class,
            *args,
        ]

    def up(self, timeout_s: float = 90.0, heap: str = "768m") -> bool:
        """Start the broker unless this state folder's broker already runs.

        Returns True when it started one, False when one was already running.
        """
        if self.running():
            return False
        jvm.resolve(jvm.KAFKA_BROKER)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        if not (self.state_dir / "data" / "meta.properties").exists():
            cluster_id = _cluster_id()
            fmt = self._java_cmd(
                "kafka.tools.StorageTool",
                "format", "-t", cluster_id, "-c", str(config), "--standalone",
                heap="256m",
            )  # fmt: skip
            done = subprocess.run(fmt, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise BrokerError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")
        if _port_open(self.port):
            raise BrokerError(f"port {self.port} is taken by another process; pick another port")
        out = (self.state_dir / "broker.stdout").open("ab")
        proc = subprocess.Popen(
            self._java_cmd("kafka.Kafka", str(config), heap=heap),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the shell that started it
        )
        self.pid_file.write_text(f"{proc.pid}\n")
        (self.state_dir / "ports").write_text(f"{self.port} {self.controller_port}\n")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(
                    f"Kafka exited with code {proc.returncode} while starting; "
                    f"see {self.log_file} and {self.state_dir / 'broker.stdout'}"
                )
            if metadata_round_trip(self.bootstrap, timeout_s=5):
                log.info("Kafka broker ready at %s (pid %d)", self.bootstrap, proc.pid)
                return True
            time.sleep(0.2)
        self.down()
        raise BrokerError(f"Kafka did not answer within {timeout_s:.0f}s; see {self.log_file}")

    def down(self, grace_s: float = 20.0) -> bool:
        """Stop the broker: SIGTERM, then SIGKILL after ``grace_s``. False if none ran."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _pid_alive(pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        if _pid_alive(pid):
            log.warning("Kafka (pid %d) ignored SIGTERM for %.0fs; killing it", pid, grace_s)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.pid_file.unlink(missing_ok=True)
        return True
