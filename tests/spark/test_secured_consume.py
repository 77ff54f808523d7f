"""The Spark job through a SASL (SCRAM-SHA-512) listener, configured by the same properties file
as the producers: the runs reach ``model_runs``, the password is in neither the checkpoint nor
the query's plans, and wrong credentials stop the job before its query starts."""

from __future__ import annotations

import tempfile
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
from runstream.devtools.kafka_broker import LocalBroker, free_port
from runstream.errors import KafkaAuthError
from runstream.producer.emitter import Emitter

pytestmark = pytest.mark.spark

USER = "spark-job"
PASSWORD = f"right-{uuid.uuid4().hex}"
WRONG = f"wrong-{uuid.uuid4().hex}"
SECRET_VAR = "RS_TEST_KAFKA_SECRET"


@pytest.fixture(scope="module")
def sasl_broker() -> Iterator[LocalBroker]:
    with tempfile.TemporaryDirectory(prefix="rs-kafka-sasl-") as state:
        broker = LocalBroker(
            Path(state), port=free_port(), controller_port=free_port(),
            sasl_port=free_port(), users=((USER, PASSWORD),),
        )  # fmt: skip
        broker.up()
        try:
            yield broker
        finally:
            broker.down()


def write_properties(path: Path, broker: LocalBroker) -> Path:
    path.write_text(
        f"bootstrap.servers={broker.sasl_bootstrap}\nsecurity.protocol=SASL_PLAINTEXT\n"
        f"sasl.mechanism=SCRAM-SHA-512\nsasl.username={USER}\n"
        f"sasl.password=${{env:{SECRET_VAR}}}\n"
    )
    return path


def test_the_job_reads_through_sasl_and_keeps_the_password_out_of_checkpoint_and_plans(
    spark: Any,
    sasl_broker: LocalBroker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(SECRET_VAR, PASSWORD)
    monkeypatch.delenv("RUNSTREAM_BOOTSTRAP_SERVERS", raising=False)
    props = write_properties(tmp_path / "client.properties", sasl_broker)
    live, replay = f"live-{uuid.uuid4().hex[:8]}", f"replay-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_client.load(properties_file=props), [live, replay])

    emitter = Emitter(topic=live, spool_dir=tmp_path / "spool", kafka_properties=props)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for experiment_id in ids:
        emitter.emit_run({**seed_experiment(), "experiment_id": experiment_id})
    assert emitter.close(60) == 0, "the runs were not acknowledged over SASL"

    config = JobConfig.from_env(
        topic=live, replay_topic=replay, lake=tmp_path / "lake", table="",
        checkpoint=str(tmp_path / "checkpoint"), kafka_properties=props,
    )  # fmt: skip
    assert config.bootstrap_servers == sasl_broker.sasl_bootstrap
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
    assert "sasl.jaas.config" in batch_plan and "redacted" in batch_plan, batch_plan
    for text in (explained, progress, batch_plan):
        assert PASSWORD not in text


def test_wrong_credentials_stop_the_job_before_its_query_starts(
    spark: Any, sasl_broker: LocalBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_VAR, WRONG)
    monkeypatch.delenv("RUNSTREAM_BOOTSTRAP_SERVERS", raising=False)
    props = write_properties(tmp_path / "client.properties", sasl_broker)
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
