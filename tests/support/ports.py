"""Free TCP ports for the servers the tests start.

Ports are drawn below the kernel's ephemeral range, so no outgoing connection of any process can
take one between the moment a test picks it and the moment its server binds it (a port picked by
binding to port 0 is an ephemeral one, and the broker's controller port, the next one up, was once
taken that way).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 20000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int = 1) -> int:
    """Returns the first of `count` consecutive free ports below the ephemeral range."""
    top = max(_ephemeral_start(), LOWEST + 1000) - count
    for _ in range(1000):
        first = random.randrange(LOWEST, top)
        if all(_bindable(first + i) for i in range(count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports between {LOWEST} and {top}")


def free_port() -> int:
    return free_ports(1)
