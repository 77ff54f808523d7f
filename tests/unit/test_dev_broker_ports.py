"""The development broker's controller port: beside the client port when that one is free,
else any free port (port + 1 of an ephemeral port may be held by a connection)."""

from __future__ import annotations

import socket
from pathlib import Path

from runstream.devtools.kafka_broker import LocalBroker, free_port, port_is_free


def _port_with_free_neighbour() -> int:
    for _ in range(50):
        port = free_port()
        if port_is_free(port + 1):
            return port
    raise AssertionError("no free port with a free neighbour")


def test_the_controller_listens_beside_a_free_client_port(tmp_path: Path) -> None:
    port = _port_with_free_neighbour()
    assert LocalBroker.in_folder(tmp_path, port=port).controller_port == port + 1


def test_a_taken_neighbour_moves_the_controller_to_a_free_port(tmp_path: Path) -> None:
    port = _port_with_free_neighbour()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port + 1))
        broker = LocalBroker.in_folder(tmp_path, port=port)
    assert broker.controller_port not in (port, port + 1)
    assert port_is_free(broker.controller_port)
