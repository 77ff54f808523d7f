"""The emitter's settings, its promise not to touch the network early, and secret handling."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from runstream import Emitter, ValidationError, contract
from runstream.demo import seed_experiment
from runstream.devtools.kafka_broker import free_port
from runstream.producer import sender as sender_module
from runstream.producer.sender import Sender, redact, scrub
from tests.unit.conftest import RecordingProducer

SECRET = "hunter2-do-not-log"


def test_importing_runstream_loads_neither_spark_nor_kafka() -> None:
    code = (
        "import sys, runstream\n"
        "from runstream import emit_run, Emitter, tracked_run\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pyspark', 'kafka', 'delta', 'py4j'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"import runstream loaded: {done.stdout}"


def test_constructing_an_emitter_touches_no_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("constructing an Emitter opened a connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    started = time.perf_counter()
    # an address that would hang a connect (a non-routable TEST-NET host)
    emitter = Emitter(bootstrap_servers="192.0.2.1:9092", spool_dir=tmp_path)
    elapsed = time.perf_counter() - started
    print(f"\nEmitter() with an unreachable bootstrap took {elapsed * 1000:.1f} ms")
    assert emitter.bootstrap_servers == "192.0.2.1:9092"


def test_emitting_with_no_broker_returns_and_raises_nothing(tmp_path: Path) -> None:
    emitter = Emitter(bootstrap_servers=f"127.0.0.1:{free_port()}", spool_dir=tmp_path)
    receipt = emitter.emit_run(seed_experiment())
    assert receipt.spool_path.exists()
    assert emitter.close(timeout_s=0.2) == 1, "the unsent event must be reported, and kept"
    assert emitter.spool.status().pending == 1


def test_emitting_a_batch_with_no_broker_returns_and_raises_nothing(tmp_path: Path) -> None:
    """Network trouble never raises into the caller for a batch either; what is left unsent is
    counted in events (10), not files (1)."""
    emitter = Emitter(bootstrap_servers=f"127.0.0.1:{free_port()}", spool_dir=tmp_path)
    receipts = emitter.emit_runs([seed_experiment() for _ in range(10)])
    assert len(receipts) == 10 and receipts[0].spool_path.exists()
    assert emitter.close(timeout_s=0.2) == 10, "the unsent events must be reported, and kept"
    assert emitter.spool.status().pending == 10


# -- settings: keyword, then environment, then default -----------------------------------
def test_settings_take_keyword_then_environment_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in (
        "RUNSTREAM_BOOTSTRAP_SERVERS",
        "RUNSTREAM_TOPIC",
        "RUNSTREAM_SPOOL_DIR",
        "RUNSTREAM_SPOOL_MAX_EVENTS",
        "RUNSTREAM_FLUSH_TIMEOUT",
        "RUNSTREAM_KAFKA_CONFIG",
    ):
        monkeypatch.delenv(var, raising=False)  # fmt: skip
    monkeypatch.setenv("RUNSTREAM_HOME", str(tmp_path / "home"))
    default = Emitter(send=False)
    assert (default.bootstrap_servers, default.topic) == ("127.0.0.1:9092", "model_runs")
    assert default.spool.root == tmp_path / "home" / "spool"
    assert (default.spool.max_events, default.flush_timeout_s) == (100_000, 10.0)
    assert default._sender.kafka_config == {}

    monkeypatch.setenv("RUNSTREAM_BOOTSTRAP_SERVERS", "env-host:1")
    monkeypatch.setenv("RUNSTREAM_TOPIC", "env_topic")
    monkeypatch.setenv("RUNSTREAM_SPOOL_DIR", str(tmp_path / "env-spool"))
    monkeypatch.setenv("RUNSTREAM_SPOOL_MAX_EVENTS", "7")
    monkeypatch.setenv("RUNSTREAM_FLUSH_TIMEOUT", "3.5")
    monkeypatch.setenv("RUNSTREAM_KAFKA_CONFIG", json.dumps({"client_id": "from-env"}))
    from_env = Emitter(send=False)
    assert (from_env.bootstrap_servers, from_env.topic) == ("env-host:1", "env_topic")
    assert from_env.spool.root == tmp_path / "env-spool"
    assert (from_env.spool.max_events, from_env.flush_timeout_s) == (7, 3.5)
    assert from_env._sender.kafka_config == {"client_id": "from-env"}

    explicit = Emitter(
        bootstrap_servers="kw-host:2", topic="kw_topic", spool_dir=tmp_path / "kw-spool",
        max_spool_events=9, flush_timeout_s=0, kafka_config={"client_id": "from-kwarg"},
        send=False,
    )  # fmt: skip
    assert (explicit.bootstrap_servers, explicit.topic) == ("kw-host:2", "kw_topic")
    assert explicit.spool.root == tmp_path / "kw-spool"
    assert (explicit.spool.max_events, explicit.flush_timeout_s) == (9, 0.0)
    assert explicit._sender.kafka_config == {"client_id": "from-kwarg"}


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        ("RUNSTREAM_SPOOL_MAX_EVENTS", "lots", "RUNSTREAM_SPOOL_MAX_EVENTS must be a number (int)"),
        ("RUNSTREAM_SPOOL_MAX_EVENTS", "0", "of at least 1, got '0'"),
        ("RUNSTREAM_FLUSH_TIMEOUT", "-1", "RUNSTREAM_FLUSH_TIMEOUT must be a number (float)"),
        ("RUNSTREAM_KAFKA_CONFIG", "{not json", "RUNSTREAM_KAFKA_CONFIG must be a JSON object"),
        ("RUNSTREAM_KAFKA_CONFIG", "[1]", '{"linger_ms": 10}'),
    ],
)
def test_a_malformed_setting_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError) as caught:
        Emitter(spool_dir=tmp_path, send=False)
    assert fragment in str(caught.value)


# -- kafka_config: passthrough, guard rails, secrets -------------------------------------
TLS_SASL = {
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "PLAIN",
    "sasl_plain_username": "svc-runstream",
    "sasl_plain_password": SECRET,
    "ssl_cafile": "/etc/ssl/ca.pem",
}


def test_kafka_config_reaches_the_producer_and_cannot_weaken_delivery(
    tmp_path: Path, fake_kafka: type[RecordingProducer]
) -> None:
    emitter = Emitter(spool_dir=tmp_path, kafka_config=TLS_SASL, send=False)
    emitter.emit_run(seed_experiment())
    assert emitter._sender.drain_once()
    (settings,) = fake_kafka.built
    assert {k: settings[k] for k in TLS_SASL} == TLS_SASL
    assert (settings["acks"], settings["enable_idempotence"]) == ("all", True)
    assert emitter.spool.status().pending == 0


@pytest.mark.parametrize(
    ("config", "fragments"),
    [
        ({"acks": 1}, ("kafka_config may not set 'acks'", "acks=all", "remove it")),
        ({"enable_idempotence": False}, ("may not set 'enable_idempotence'",)),
        ({"value_serializer": str}, ("may not set 'value_serializer'",)),
        ({"sasl_plain_pasword": SECRET}, ("'sasl_plain_pasword' is not a kafka-python setting",
                                          "did you mean 'sasl_plain_password'")),
    ],
    ids=["acks", "idempotence", "serializer", "typo"],
)  # fmt: skip
def test_kafka_config_is_checked_at_construction(
    tmp_path: Path, config: dict[str, Any], fragments: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as caught:
        Emitter(spool_dir=tmp_path, kafka_config=config, send=False)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert SECRET not in str(caught.value), "a config error message must not show values"


def test_redact_hides_secret_settings_and_keeps_the_rest() -> None:
    shown = redact({**TLS_SASL, "ssl_password": "p", "sasl_oauth_token_provider": object(),
                    "sasl_aws_msk_iam_secret_access_key": "s", "client_id": "c"})  # fmt: skip
    assert shown["sasl_plain_password"] == shown["ssl_password"] == "***"
    assert (
        shown["sasl_oauth_token_provider"] == shown["sasl_aws_msk_iam_secret_access_key"] == "***"
    )
    assert shown["sasl_plain_username"] == "svc-runstream"
    assert shown["client_id"] == "c" and shown["ssl_cafile"] == "/etc/ssl/ca.pem"
    assert scrub(f"failed with password={SECRET}!", TLS_SASL) == "failed with password=***!"


def test_secrets_never_reach_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """kafka-python puts raw settings into some error messages; none may reach a log line."""
    import kafka

    class Refusing(RecordingProducer):
        def __init__(self, **settings: Any) -> None:
            raise ValueError(f"cannot use {settings}")  # as kafka-python's own errors do

    class FailingSend(RecordingProducer):
        def send(self, topic: str, key: bytes, value: bytes) -> Any:
            raise RuntimeError(f"send failed for sasl_plain_password={SECRET}")

    monkeypatch.setattr(sender_module, "reachable", lambda bootstrap: True)
    emitter = Emitter(spool_dir=tmp_path, kafka_config=TLS_SASL, send=False)
    emitter.emit_run(seed_experiment())
    sender = Sender(emitter.spool, topic="t", bootstrap_servers="h:1", kafka_config=TLS_SASL)
    caplog.set_level(logging.DEBUG)
    for producer in (Refusing, FailingSend):
        monkeypatch.setattr(kafka, "KafkaProducer", producer)
        assert sender.flush(timeout_s=0).left == 1  # one round, never raises, event kept
    assert "cannot connect to Kafka" in caplog.text and "sender failed" in caplog.text
    assert SECRET not in caplog.text
    assert "***" in caplog.text


def test_secrets_never_reach_an_event(tmp_path: Path) -> None:
    emitter = Emitter(spool_dir=tmp_path, kafka_config=TLS_SASL, send=False)
    receipt = emitter.emit_run(seed_experiment())
    raw = receipt.spool_path.read_bytes()
    assert SECRET.encode() not in raw and b"svc-runstream" not in raw
    event = contract.decode(emitter.spool.read(emitter.spool.pending()[0])[1])  # type: ignore[index]
    assert set(event["producer"]) == {"host", "pid", "library_version"}


def test_flush_stops_waiting_once_no_broker_answers(tmp_path: Path) -> None:
    """An offline laptop must not sit out the whole flush timeout at exit: the flush ends as
    soon as the sender finds no broker, and the run stays in the spool."""
    emitter = Emitter(
        bootstrap_servers=f"127.0.0.1:{free_port()}", spool_dir=tmp_path, flush_timeout_s=600
    )
    emitter.emit_run(seed_experiment())
    started = time.monotonic()
    left = emitter.close()
    waited = time.monotonic() - started
    print(f"close() with no broker returned after {waited:.2f}s of a 600s bound")
    assert left == 1
    assert emitter.spool.status().pending == 1
    assert waited < 300, "flush waited for its timeout although no broker was reachable"
