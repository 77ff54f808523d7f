"""Unit-test fixtures: a stand-in for kafka-python's producer, for the sender's own logic
(what it sends, when it stops, which settings it passes). Tests that need Kafka itself are in
``tests/broker``, against a real broker."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from runstream.producer import sender as sender_module


class RecordingProducer:
    """Stands in for kafka.KafkaProducer: acks everything, records its settings and each
    value sent (so a re-send is counted)."""

    built: ClassVar[list[dict[str, Any]]] = []
    sent: ClassVar[list[bytes]] = []

    def __init__(self, **settings: Any) -> None:
        RecordingProducer.built.append(settings)

    def send(self, topic: str, key: bytes, value: bytes) -> Any:
        RecordingProducer.sent.append(value)

        class Acked:
            exception = None
            is_done = True

            def succeeded(self) -> bool:
                return True

            def failed(self) -> bool:
                return False

        return Acked()

    def flush(self, timeout: float) -> None:
        pass

    def close(self, timeout: float) -> None:
        pass


@pytest.fixture()
def fake_kafka(monkeypatch: pytest.MonkeyPatch) -> type[RecordingProducer]:
    """kafka.KafkaProducer replaced by ``RecordingProducer``, every broker reachable."""
    import kafka

    RecordingProducer.built = []
    RecordingProducer.sent = []
    monkeypatch.setattr(kafka, "KafkaProducer", RecordingProducer)
    monkeypatch.setattr(sender_module, "reachable", lambda bootstrap: True)
    return RecordingProducer
