"""A real Apache Kafka broker (KRaft, combined mode) run as a plain Java process.

This machine class has no Docker engine, so the development and test broker is built from Maven
Central jars (see ``runstream/_jvm/kafka-broker.pom.xml``). Everything it writes (properties,
data, log, pid) lives in one state folder, so ``up``/``status``/``down`` from separate shells
agree on which broker they mean.

Secured listeners, for testing the clients' security settings against a real broker, are
optional and added beside the plaintext one (which stays the inter-broker listener and what
``up()`` probes): ``sasl_port`` serves SASL_PLAINTEXT with PLAIN and SCRAM-SHA-512 for
``users``; ``ssl_port`` serves TLS with a CA and a broker certificate generated with the JDK's
``keytool`` into ``<state>/tls`` (``ca_pem`` for kafka-python, ``truststore`` for Java).
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
from dataclasses import dataclass, field
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


TLS_STORE_PASSWORD = "runstream-test"  # the throwaway test CA's stores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True when nothing holds ``port`` on the loopback interface now."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


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
    sasl_port: int | None = None
    ssl_port: int | None = None
    users: tuple[tuple[str, str], ...] = field(default=(), repr=False)

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
        # The controller listens beside the client port (9093 for 9092) unless that port is
        # taken, as port + 1 of a free port from the ephemeral range may be by a connection:
        # then on any free port (recorded in ``ports`` like the other).
        controller = port + 1 if port_is_free(port + 1) else free_port()
        return cls(state_dir, port=port, controller_port=controller)

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

    @property
    def sasl_bootstrap(self) -> str:
        if self.sasl_port is None:
            raise BrokerError("this broker has no SASL listener; give LocalBroker(sasl_port=...)")
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def ssl_bootstrap(self) -> str:
        if self.ssl_port is None:
            raise BrokerError("this broker has no SSL listener; give LocalBroker(ssl_port=...)")
        return f"127.0.0.1:{self.ssl_port}"

    @property
    def tls_dir(self) -> Path:
        return self.state_dir / "tls"

    @property
    def ca_pem(self) -> Path:
        """The test CA as PEM: what kafka-python (``ssl.ca.location``) needs."""
        return self.tls_dir / "ca.pem"

    @property
    def truststore(self) -> Path:
        """The test CA in a PKCS12 truststore (password ``TLS_STORE_PASSWORD``), for Java."""
        return self.tls_dir / "truststore.p12"

    def _make_tls(self) -> None:
        """A CA and a broker certificate for ``localhost``/127.0.0.1, signed by it (keytool)."""
        if (self.tls_dir / "keystore.p12").exists():
            return
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        keytool = str(Path(jvm.java()).with_name("keytool"))
        pw = TLS_STORE_PASSWORD
        ca, ks = str(self.tls_dir / "ca.p12"), str(self.tls_dir / "keystore.p12")
        csr, crt = str(self.tls_dir / "broker.csr"), str(self.tls_dir / "broker.pem")
        common = ["-storetype", "PKCS12", "-storepass", pw, "-keypass", pw]
        steps = [
            ["-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "2048",
             "-validity", "30", "-dname", "CN=runstream-test-ca", "-ext", "bc:c=ca:true",
             "-ext", "ku:c=keyCertSign,cRLSign", "-keystore", ca, *common],
            ["-exportcert", "-rfc", "-alias", "ca", "-keystore", ca, "-file", str(self.ca_pem),
             "-storetype", "PKCS12", "-storepass", pw],
            ["-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048",
             "-validity", "30", "-dname", "CN=localhost", "-keystore", ks, *common],
            ["-certreq", "-alias", "broker", "-keystore", ks, "-file", csr, *common],
            ["-gencert", "-alias", "ca", "-keystore", ca, "-infile", csr, "-outfile", crt,
             "-rfc", "-validity", "30", "-ext", "SAN=dns:localhost,ip:127.0.0.1",
             "-ext", "ku:c=digitalSignature,keyEncipherment", "-ext", "eku=serverAuth",
             *common],
            ["-importcert", "-noprompt", "-alias", "ca", "-file", str(self.ca_pem),
             "-keystore", ks, *common],
            ["-importcert", "-alias", "broker", "-file", crt, "-keystore", ks, *common],
            ["-importcert", "-noprompt", "-alias", "ca", "-file", str(self.ca_pem),
             "-keystore", str(self.truststore), *common],
        ]  # fmt: skip
        for step in steps:
            done = subprocess.run([keytool, *step], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise BrokerError(
                    f"keytool {step[0]} failed while making the test TLS certificates:\n"
                    f"{done.stdout}{done.stderr}"
                )

    def _listeners(self) -> tuple[str, str, str]:
        """(listeners, advertised.listeners, listener.security.protocol.map)."""
        names = [("PLAINTEXT", self.port)]
        if self.sasl_port is not None:
            names.append(("SASL_PLAINTEXT", self.sasl_port))
        if self.ssl_port is not None:
            names.append(("SSL", self.ssl_port))
        controller = f"CONTROLLER://127.0.0.1:{self.controller_port}"
        bind = ",".join(f"{name}://127.0.0.1:{port}" for name, port in names)
        protocols = ",".join(["CONTROLLER:PLAINTEXT", *(f"{n}:{n}" for n, _ in names)])
        return f"{bind},{controller}", f"{bind},{controller}", protocols

    def _security_props(self) -> dict[str, str]:
        props: dict[str, str] = {}
        if self.sasl_port is not None:
            users = " ".join(f'user_{u}="{p}"' for u, p in self.users)
            prefix = "listener.name.sasl_plaintext"
            props.update({
                "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
                f"{prefix}.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
                f"{prefix}.plain.sasl.jaas.config":
                    f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};",
                f"{prefix}.scram-sha-512.sasl.jaas.config":
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            })  # fmt: skip
        if self.ssl_port is not None:
            prefix = "listener.name.ssl"
            props.update({
                f"{prefix}.ssl.keystore.location": str(self.tls_dir / "keystore.p12"),
                f"{prefix}.ssl.keystore.type": "PKCS12",
                f"{prefix}.ssl.keystore.password": TLS_STORE_PASSWORD,
                f"{prefix}.ssl.key.password": TLS_STORE_PASSWORD,
                f"{prefix}.ssl.client.auth": "none",
            })  # fmt: skip
        return props

    def _write_config(self) -> Path:
        data = self.state_dir / "data"
        listeners, advertised, protocols = self._listeners()
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": listeners,
            "advertised.listeners": advertised,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": protocols,
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
            **self._security_props(),
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
        if self.ssl_port is not None:
            self._make_tls()
        config = self._write_config()
        if not (self.state_dir / "data" / "meta.properties").exists():
            cluster_id = _cluster_id()
            scram = [
                arg
                for user, password in (self.users if self.sasl_port is not None else ())
                for arg in ("--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]")
            ]
            fmt = self._java_cmd(
                "kafka.tools.StorageTool",
                "format", "-t", cluster_id, "-c", str(config), "--standalone", *scram,
                heap="256m",
            )  # fmt: skip
            done = subprocess.run(fmt, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise BrokerError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")
        for port in (self.port, self.sasl_port, self.ssl_port):
            if port is not None and _port_open(port):
                raise BrokerError(f"port {port} is taken by another process; pick another port")
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
