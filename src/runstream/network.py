"""Is a Kafka bootstrap address answering? A TCP probe that takes at most about a second.

kafka-python can block for tens of seconds while building a client against an address where
nothing listens, so every part that talks to Kafka on a user's behalf (the sender, ``emit``,
``backfill``, ``spool flush``) probes first and reports an unreachable broker at once, naming
the address and the setting that holds it.
"""

from __future__ import annotations

import contextlib
import socket

from runstream.environment_variables import RUNSTREAM_BOOTSTRAP_SERVERS
from runstream.errors import BrokerUnreachableError


def reachable(bootstrap: str, timeout_s: float = 1.0) -> bool:
    """True when any address of the comma-separated ``bootstrap`` accepts a TCP connection."""
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        with (
            contextlib.suppress(OSError, ValueError),
            socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout_s),
        ):
            return True
    return False


def unreachable(bootstrap: str, what: str = "") -> BrokerUnreachableError:
    """The error for a broker that does not answer: the address, the setting, and ``what``
    happened to the user's data meanwhile."""
    tail = f"; {what}" if what else ""
    return BrokerUnreachableError(
        f"Kafka at {bootstrap} is unreachable; start it (`runstream kafka up`) or point "
        f"{RUNSTREAM_BOOTSTRAP_SERVERS.name} (--bootstrap-servers) at a running broker{tail}"
    )
