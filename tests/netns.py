"""Hosts of their own for tests: Linux network namespaces on one bridge, each with its own address.

    root namespace (the test, its clients) ── bridge 10.X.Y.1/24 ─┬─ veth ── namespace "kafka"    10.X.Y.10
                                                                  ├─ veth ── namespace "node-1"   10.X.Y.11
                                                                  └─ …

Nothing is shared between hosts but the bridge: a process on one host
reaches another only by that host's address, never through a common
loopback. `cut(a, b)` drops every packet between two hosts, silently, as a
broken link does (blackhole routes on both sides); `mend(a, b)` undoes it.
The addresses are private to this machine: nothing leaves it.

Needs root (CAP_NET_ADMIN) and `ip` from iproute2.
"""

from __future__ import annotations

import os
import random
import subprocess
import uuid
from dataclasses import dataclass


def available() -> bool:
    """Whether this process may make network namespaces."""
    return os.geteuid() == 0 and subprocess.run(["ip", "-V"], capture_output=True).returncode == 0


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class Host:
    """One network namespace: its name, its address, and the command that runs a program there."""

    name: str
    namespace: str
    address: str

    @property
    def prefix(self) -> list[str]:
        """Prepend to a command line to run it on this host."""
        return ["ip", "netns", "exec", self.namespace]


class Network:
    """A bridge and the hosts on it; `close()` removes them all."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:5]
        self.subnet = f"10.{random.randrange(100, 250)}.{random.randrange(1, 250)}"
        self.bridge = f"sgbr{self.tag}"
        self.hosts: list[Host] = []
        self._cuts: set[tuple[str, str]] = set()
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def host(self, name: str) -> Host:
        """A new host on the bridge, with the next address."""
        number = 10 + len(self.hosts)
        host = Host(name, f"sg{self.tag}-{name}", f"{self.subnet}.{number}")
        inside, outside = f"sg{self.tag}i{number}", f"sg{self.tag}o{number}"
        _ip("netns", "add", host.namespace)
        self.hosts.append(host)
        _ip("link", "add", inside, "type", "veth", "peer", "name", outside)
        _ip("link", "set", inside, "netns", host.namespace)
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        run = ["netns", "exec", host.namespace, "ip"]
        _ip(*run, "addr", "add", f"{host.address}/24", "dev", inside)
        _ip(*run, "link", "set", inside, "up")
        _ip(*run, "link", "set", "lo", "up")
        return host

    def cut(self, a: Host, b: Host) -> None:
        """Drop every packet between `a` and `b`, in both directions, without a word to either."""
        _ip("netns", "exec", a.namespace, "ip", "route", "add", "blackhole", f"{b.address}/32")
        _ip("netns", "exec", b.namespace, "ip", "route", "add", "blackhole", f"{a.address}/32")
        self._cuts.add((a.namespace, b.namespace))

    def mend(self, a: Host, b: Host) -> None:
        """Undo `cut(a, b)`."""
        _ip("netns", "exec", a.namespace, "ip", "route", "del", "blackhole", f"{b.address}/32")
        _ip("netns", "exec", b.namespace, "ip", "route", "del", "blackhole", f"{a.address}/32")
        self._cuts.discard((a.namespace, b.namespace))

    def close(self) -> None:
        """Remove every host (their veths go with them) and the bridge."""
        for host in self.hosts:
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        self.hosts.clear()
