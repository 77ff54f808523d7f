"""The Spark job through each secured listener (SASL PLAIN, SASL SCRAM-SHA-512, TLS) of one
broker, configured by the same properties file as the producers: emit -> sender -> job ->
``model_runs``; the secret is in neither the checkpoint nor the query's plans; wrong
credentials stop the job before its query starts. The broker and the properties a user would
write are those of ``tests/broker/test_secured_kafka.py``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runstream import kafka_client
from runstream.consumer.job import JobConfig, ensure_topics, start
from runstream.consumer.topics import create_topics
from runstream.demo import seed_experiment
from runstream.devtools.kafka_broker import LocalBroker
from runstream.errors import KafkaAuthError
from runstream.producer.emitter import Emitter
from tests.broker.test_secured_kafka import (  # the same broker and properties as the light half
    CASES,
    SECRET_VAR,
    WRONG,
    properties,
    secret_of,
    secured_broker,
)

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def secured() -> Iterator[LocalBroker]:
    yield from secured_broker()


def write_properties(path: Path, broker: LocalBroker, case: str, right: bool = True) -> Path:
    path.write_text(properties(broker, case, right))
    return path


@pytest.mark.parametrize("case", CASES)
def test_the_job_reads_through_each_listener_and_keeps_the_secret_out_of_checkpoint_and_plans(
    spark: Any,
    secured: LocalBroker,
    case: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    PASSWORD = secret_of(case, right=True)
    monkeypatch.setenv(SECRET_VAR, PASSWORD)
    monkeypatch.delenv("RUNSTREAM_BOOTSTRAP_SERVERS", raising=False)
    props = write_properties(tmp_path / "client.properties", secured, case)
    live, replay = f"live-{uuid.uuid4().hex[:8]}", f"replay-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_client.load(properties_file=props), [live, replay])

    emitter = Emitter(topic=live, spool_dir=tmp_path / "spool", kafka_properties=props)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for experiment_id in ids:
        emitter.emit_run({**seed_experiment(), "experiment_id": experiment_id})
    assert emitter.close(60) == 0, f"the runs were not acknowledged over {case}"

    config = JobConfig.from_env(
        topic=live, replay_topic=replay, lake=tmp_path / "lake", table="",
        checkpoint=str(tmp_path / "checkpoint"), kafka_properties=props,
    )  # fmt: skip
    bootstrap = secured.ssl_bootstrap if case == "tls" else secured.sasl_bootstrap
    assert config.bootstrap_servers == bootstrap
    assert PASSWORD not in repr(config)
    query = start(spark, config, once=True)
    query.awaitTermination()
    assert query.exception() is None, query.exception()

    rows = spark.sql(f"SELECT experiment_id FROM {config.tables.runs}").collect()
    assert sorted(r["experiment_id"] for r in rows) == sorted(ids)

    # the checkpoint folder: offsets, commits, metadata, sources
    for path in Path(config.checkpoint).rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), f"the password is in {path}"
    # the streaming query's plan and progress, and a batch read's logged plan
    query.explain(extended=True)
    explained = capsys.readouterr().out
    assert "Kafka" in explained or "kafka" in explained
    progress = str(query.recentProgress)
    # a plan that prints its data source options (Spark masks those matching the redaction
    # regexes that spark_session sets): the Kafka options exactly as the job passes them
    options = ", ".join(
        f"'kafka.{key}' '{value.replace(chr(39), chr(92) + chr(39))}'"
        for key, value in config.kafka_options
    )
    batch_plan = "\n".join(
        row[0]
        for row in spark.sql(
            f"EXPLAIN EXTENDED CREATE TEMPORARY VIEW secured_probe USING kafka OPTIONS "
            f"({options}, 'subscribe' '{live}')"
        ).collect()
    )
    secret_option = "ssl.truststore.password" if case == "tls" else "sasl.jaas.config"
    assert secret_option in batch_plan and "redacted" in batch_plan, batch_plan
    for text in (explained, progress, batch_plan):
        assert PASSWORD not in text


def test_wrong_credentials_stop_the_job_before_its_query_starts(
    spark: Any, secured: LocalBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    PASSWORD = secret_of("sasl-scram-sha-512", right=True)
    monkeypatch.setenv(SECRET_VAR, WRONG)
    monkeypatch.delenv("RUNSTREAM_BOOTSTRAP_SERVERS", raising=False)
    props = write_properties(tmp_path / "client.properties", secured, "sasl-scram-sha-512")
    config = JobConfig.from_env(
        topic="never-created", replay_topic="never-created.replay", lake=tmp_path / "lake",
        table="", checkpoint=str(tmp_path / "checkpoint"), kafka_properties=props,
    )  # fmt: skip
    # the check itself is bounded (start() creates the Delta tables first, which takes its own
    # time on a loaded machine)
    started = time.monotonic()
    with pytest.raises(KafkaAuthError):
        ensure_topics(config)
    assert time.monotonic() - started < 30
    with pytest.raises(KafkaAuthError) as caught:
        start(spark, config, once=True)
    message = str(caught.value)
    assert "SCRAM-SHA-512" in message and "sasl.password" in message
    assert WRONG not in message and PASSWORD not in message
    assert not spark.streams.active, "a query started despite the refusal"
