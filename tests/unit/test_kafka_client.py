"""The one Kafka client configuration: the properties format, ``${env:...}``, precedence, the
mapping to kafka-python and to Spark, and that secrets stay out of text. No broker needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from runstream import kafka_client
from runstream.errors import ConfigError

SECRET = 'pa:ss=w\\"ord-7731'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "client.properties"
    path.write_text(text)
    return path


def test_java_properties_syntax() -> None:
    text = (
        "# comment\n! also a comment\n\n"
        "a=1\n  b : 2\nc 3\nd=x\\\n    y\ne=tab\\there\\u0041\nf\\=g=h\nempty=\nk = = v\n"
    )
    assert kafka_client.parse_properties(text) == {
        "a": "1", "b": "2", "c": "3", "d": "xy", "e": "tab\thereA", "f=g": "h", "empty": "",
        "k": "= v",
    }  # fmt: skip


def test_env_references_and_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RS_TEST_PW", SECRET)
    monkeypatch.delenv("RUNSTREAM_BOOTSTRAP_SERVERS", raising=False)
    path = write(
        tmp_path,
        "bootstrap.servers=file:9092\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.username=alice\nsasl.password=${env:RS_TEST_PW}\n",
    )
    config = kafka_client.load(properties_file=path)
    assert config.bootstrap_servers == "file:9092"
    assert config.credentials() == ("alice", SECRET)
    monkeypatch.setenv("RUNSTREAM_BOOTSTRAP_SERVERS", "env:9092")
    assert kafka_client.load(properties_file=path).bootstrap_servers == "env:9092"
    assert kafka_client.load("arg:9092", properties_file=path).bootstrap_servers == "arg:9092"
    monkeypatch.setenv("RUNSTREAM_KAFKA_PROPERTIES", str(path))
    assert kafka_client.load().credentials() == ("alice", SECRET)


def test_a_missing_env_reference_names_the_variable_not_a_value(tmp_path: Path) -> None:
    path = write(tmp_path, "sasl.password=${env:RS_TEST_UNSET_VAR}\n")
    with pytest.raises(ConfigError, match="RS_TEST_UNSET_VAR is not set"):
        kafka_client.load(properties_file=path)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("security.protocol=SASL_SSL\nsasl.username=a\nsasl.password=b\n", "needs sasl.mechanism"),
        ("security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n", "needs credentials"),
        ("security.protocol=TLS\n", "security.protocol must be one of"),
    ],
)
def test_incomplete_settings_are_refused(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        kafka_client.load(properties_file=write(tmp_path, text))


def test_mapping_to_kafka_python_and_spark(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=alice\n"
        f"sasl.password={SECRET.replace(chr(92), chr(92) * 2)}\nssl.ca.location=/ca.pem\n"
        "ssl.endpoint.identification.algorithm=\nrequest.timeout.ms=20000\n",
    )
    config = kafka_client.load("h:9093", properties_file=path)
    python = config.python_settings()
    assert python["sasl_plain_password"] == SECRET
    assert python["ssl_cafile"] == "/ca.pem" and python["ssl_check_hostname"] is False
    spark = config.spark_options()
    assert spark["kafka.bootstrap.servers"] == "h:9093"
    assert spark["kafka.ssl.truststore.type"] == "PEM"
    assert spark["kafka.request.timeout.ms"] == "20000"
    jaas = spark["kafka.sasl.jaas.config"]
    assert jaas.startswith("org.apache.kafka.common.security.plain.PlainLoginModule required")
    # the JAAS line round-trips the password, quotes and backslashes included
    assert kafka_client._jaas_field(jaas, "password") == SECRET
    assert not any(k.startswith("kafka.sasl.username") for k in spark)
    assert SECRET not in repr(config) and SECRET not in config.describe()
    assert SECRET not in config.scrub(f"oops {SECRET} and {jaas}")


def test_on_databricks_the_built_jaas_line_names_the_shaded_login_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=a\n"
        "sasl.password=b\n",
    )
    monkeypatch.setenv("RUNSTREAM_SPARK_JARS", "none")
    jaas = kafka_client.load("h:9093", properties_file=path).spark_options()
    assert jaas["kafka.sasl.jaas.config"].startswith(
        "kafkashaded.org.apache.kafka.common.security.scram.ScramLoginModule required"
    )


def test_a_jks_truststore_is_refused_for_kafka_python_with_the_fix(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "security.protocol=SSL\nssl.truststore.location=/t.jks\nssl.truststore.password=x\n",
    )
    config = kafka_client.load("h:1", properties_file=path)
    assert config.spark_options()["kafka.ssl.truststore.location"] == "/t.jks"
    with pytest.raises(ConfigError, match=r"ssl\.ca\.location"):
        config.python_settings()


class _Admin:
    """A stand-in admin client: the topics and the broker count a cluster reports."""

    def __init__(self, topics: list[str], brokers: int) -> None:
        self.topics, self.brokers = topics, brokers

    def list_topics(self) -> list[str]:
        return self.topics

    def describe_cluster(self) -> dict[str, object]:
        return {"brokers": [{"broker_id": i} for i in range(self.brokers)]}

    def close(self) -> None:
        pass


def test_the_job_never_auto_creates_a_topic_on_a_multi_broker_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runstream.consumer import job
    from runstream.errors import TopicMissingError

    created: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(
        job, "create_topics", lambda kafka, names, partitions, config: created.append(
            (list(names), dict(config))
        )
    )  # fmt: skip
    config = job.JobConfig.from_env(
        bootstrap_servers="h:9092", topic="live", replay_topic="live.replay", table="x.y.z"
    )
    monkeypatch.setattr(job, "admin_client", lambda kafka: _Admin(["live"], brokers=3))
    with pytest.raises(TopicMissingError) as caught:
        job.ensure_topics(config)
    message = str(caught.value)
    assert "live.replay" in message and "runstream topics create" in message
    assert "\n" not in message and created == []

    monkeypatch.setattr(job, "admin_client", lambda kafka: _Admin(["live"], brokers=1))
    job.ensure_topics(config)
    assert created == [(["live.replay"], {"retention.ms": "-1"})]
