"""The light half against a secured broker: SASL PLAIN, SASL SCRAM-SHA-512 and TLS listeners of
one real broker (started once for this module), configured the way a user would, through a
Java-style properties file whose secret comes from ``${env:...}``.

Right settings: emit -> sender -> topic, ``runstream backfill`` and ``runstream topics create``
work. Wrong settings: every part fails with one clear error within 30 s (the CLI: one stderr
line, exit code 3), and the background sender keeps the event, logs, and never raises. In both
cases the secret strings appear nowhere: logs, CLI output, spool files, records on the topics.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runstream import contract
from runstream.cli import EXIT_MISSING, EXIT_OK
from runstream.consumer.topics import fresh_topic
from runstream.demo import seed_experiment
from runstream.devtools.kafka_broker import TLS_STORE_PASSWORD, LocalBroker, free_port
from runstream.devtools.testkit import read_topic, spooled_events, wait_for
from runstream.producer.emitter import Emitter
from runstream.producer.spool import Spool

pytestmark = pytest.mark.broker

USER = "alice"
PASSWORD = f"right-{uuid.uuid4().hex}"  # the user's password: must never show up anywhere
WRONG = f"wrong-{uuid.uuid4().hex}"  # a mistyped one: must not show up either
SECRET_VAR = "RS_TEST_KAFKA_SECRET"
CASES = ("sasl-plain", "sasl-scram-sha-512", "tls")
BOUND_S = 30.0


def secured_broker() -> Iterator[LocalBroker]:
    """One broker with plaintext (for the test's own reads), SASL and SSL listeners."""
    with tempfile.TemporaryDirectory(prefix="rs-kafka-secured-") as state:
        broker = LocalBroker(
            Path(state), port=free_port(), controller_port=free_port(),
            sasl_port=free_port(), ssl_port=free_port(), users=((USER, PASSWORD),),
        )  # fmt: skip
        broker.up()
        try:
            yield broker
        finally:
            broker.down()


@pytest.fixture(scope="module")
def secured() -> Iterator[LocalBroker]:
    yield from secured_broker()


def properties(broker: LocalBroker, case: str, right: bool) -> str:
    """The client properties a user would write; the secret is always ``${env:...}``."""
    if case == "tls":
        # Right: the broker's CA (PEM for kafka-python, the PKCS12 truststore for Java, whose
        # password is the secret here). Wrong: no CA, so the certificate cannot be verified.
        trust = (
            f"ssl.ca.location={broker.ca_pem}\nssl.truststore.location={broker.truststore}\n"
            "ssl.truststore.type=PKCS12\n"
            if right
            else ""
        )
        return (
            f"bootstrap.servers={broker.ssl_bootstrap}\nsecurity.protocol=SSL\n{trust}"
            f"ssl.truststore.password=${{env:{SECRET_VAR}}}\n"
        )
    mechanism = "PLAIN" if case == "sasl-plain" else "SCRAM-SHA-512"
    return (
        f"# {case}\nbootstrap.servers={broker.sasl_bootstrap}\n"
        f"security.protocol=SASL_PLAINTEXT\nsasl.mechanism={mechanism}\n"
        f"sasl.username={USER}\nsasl.password=${{env:{SECRET_VAR}}}\n"
    )


def use_properties(
    monkeypatch: pytest.MonkeyPatch, folder: Path, broker: LocalBroker, case: str, right: bool
) -> None:
    """Point RUNSTREAM_KAFKA_PROPERTIES at a file for ``case``, its secret in the environment."""
    monkeypatch.setenv(SECRET_VAR, secret_of(case, right))
    props = folder / "client.properties"
    props.write_text(properties(broker, case, right))
    monkeypatch.setenv("RUNSTREAM_KAFKA_PROPERTIES", str(props))


def secret_of(case: str, right: bool) -> str:
    if case == "tls":
        return TLS_STORE_PASSWORD if right else WRONG
    return PASSWORD if right else WRONG


@pytest.fixture()
def user_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Path:
    """A clean environment: no bootstrap override, every log line captured."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("RUNSTREAM_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("RUNSTREAM_KAFKA_CONFIG", raising=False)
    runs = tmp_path / "runs.jsonl"
    run = {**seed_experiment(), "experiment_id": str(uuid.uuid4())}
    run["run_timestamp"] = run["run_timestamp"].isoformat()
    runs.write_text(json.dumps(run) + "\n")
    return runs


def cli(*argv: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """The real command line in a subprocess (its own logging, as a user sees it)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "runstream", *argv],
        cwd=cwd, env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done, time.monotonic() - started


def assert_no_secret(texts: list[str], spool_root: Path | None, records: list[bytes]) -> None:
    secrets = (PASSWORD, WRONG, TLS_STORE_PASSWORD)
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"a secret leaked into: {text[:300]}"
        for value in records:
            assert secret.encode() not in value, "a secret leaked into a record on the topic"
        if spool_root is not None:
            for path in spool_root.rglob("*"):
                if path.is_file():
                    assert secret.encode() not in path.read_bytes(), f"a secret is in {path}"


@pytest.mark.parametrize("case", CASES)
def test_right_settings_every_part_works(
    case: str,
    secured: LocalBroker,
    user_setup: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    use_properties(monkeypatch, tmp_path, secured, case, right=True)
    live, replay = fresh_topic(secured.bootstrap, "live"), fresh_topic(secured.bootstrap, "replay")
    texts: list[str] = []

    # emit_run -> spool -> background sender -> the topic, over the secured listener
    spool = tmp_path / "spool"
    emitter = Emitter(topic=live, spool_dir=spool)
    assert emitter.bootstrap_servers != secured.bootstrap  # bootstrap.servers from the file
    receipt = emitter.emit_run({**seed_experiment(), "experiment_id": str(uuid.uuid4())})
    assert emitter.close(BOUND_S) == 0, "the run was not acknowledged"
    records = read_topic(secured.bootstrap, live, 1)
    assert [contract.decode(r.value)["event_id"] for r in records] == [receipt.event_id]

    # backfill, through the CLI
    done, _ = cli("backfill", str(user_setup), "--topic", replay, cwd=tmp_path)
    texts += [done.stdout, done.stderr]
    assert done.returncode == EXIT_OK, done.stderr
    replayed = read_topic(secured.bootstrap, replay, 1)
    assert len(replayed) == 1

    # topics create, through the CLI: replication factor = the one broker, kept forever
    name = f"created-{uuid.uuid4().hex[:8]}"
    done, _ = cli("topics", "create", "--topic", name, "--partitions", "2", "--json", cwd=tmp_path)
    texts += [done.stdout, done.stderr]
    assert done.returncode == EXIT_OK, done.stderr
    row = json.loads(done.stdout)
    assert row == {"topic": name, "created": True, "partitions": 2, "replication_factor": 1}
    assert topic_config(secured.bootstrap, name)["retention.ms"] == "-1"

    texts.append(caplog.text)
    assert_no_secret(texts, spool, [r.value for r in [*records, *replayed]])


def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    """A topic's configuration as the broker reports it (over the plaintext listener)."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        return {key: entry["value"] for key, entry in found["topic"][topic].items()}
    finally:
        admin.close()


@pytest.mark.parametrize("case", CASES)
def test_wrong_settings_fail_clearly_within_bounds_and_leak_nothing(
    case: str,
    secured: LocalBroker,
    user_setup: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    use_properties(monkeypatch, tmp_path, secured, case, right=False)
    live = fresh_topic(secured.bootstrap, "live")
    spool = tmp_path / "spool"
    hint = "ssl.ca.location" if case == "tls" else "sasl.password"
    texts: list[str] = []

    for argv in (
        ["emit", str(user_setup), "--topic", live, "--spool-dir", str(spool), "--timeout", "60"],
        ["spool", "flush", "--topic", live, "--spool-dir", str(spool), "--timeout", "60"],
        ["backfill", str(user_setup), "--topic", f"{live}-replay"],
        ["topics", "create", "--topic", f"{live}-new"],
    ):
        done, seconds = cli(*argv, cwd=tmp_path)
        texts += [done.stdout, done.stderr]
        what = " ".join(argv[:2])
        assert done.returncode == EXIT_MISSING, f"{what}: {done.returncode} {done.stderr}"
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("runstream: "), f"{what}: {lines}"
        assert "refused this client" in lines[0] and hint in lines[0], f"{what}: {lines[0]}"
        assert seconds < BOUND_S, f"{what} took {seconds:.1f}s"
    # the emitted run is still in the spool, nothing reached the topic
    assert len(spooled_events(Spool(spool))) == 1
    assert end_offset(secured.bootstrap, live) == 0

    # the background sender: emit_run never raises, the event stays, the reason is logged once
    emitter = Emitter(topic=live, spool_dir=spool)
    emitter.emit_run({**seed_experiment(), "experiment_id": str(uuid.uuid4())})
    wait_for(lambda: emitter._sender.connect_error is not None, BOUND_S, "the sender's refusal")
    assert emitter.close(0) == 1
    assert len(spooled_events(Spool(spool))) == 2
    assert "cannot connect" in caplog.text and hint in caplog.text
    texts += [caplog.text, emitter._sender.connect_error or ""]
    assert_no_secret(texts, spool, [])


def end_offset(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        part = TopicPartition(topic, 0)
        return int(consumer.end_offsets([part])[part])
    finally:
        consumer.close()
