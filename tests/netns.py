"""Separate "lab PCs" for tests: Linux network namespaces, each joined to this machine by a veth pair.

Each lab PC is a network namespace made by the test itself (`ip netns add`),
with loopback up and one end of a veth pair inside, addressed `10.231.<k>.2/24`;
the other end stays in the root namespace as `10.231.<k>.1/24`.  A process
started with `LabPC.run` (through `ip netns exec`, which execs the command, so
its pid is the real process's and signals reach it) sees only its own loopback
and that link: the hop between it and a frontend in the root namespace is a
real network between hosts.  No namespace has a default route, so nothing
inside can reach anything but the root end of its own link.

`<k>` is a /24 that no route or address of this machine overlaps (chosen under
a file lock, so parallel runs never pick the same one).  Names carry the
pytest worker and this process's pid (`lbtest-<worker>-<pid>-<i>`, veths
`lbt<pid>h<i>` / `lbt<pid>n<i>`): parallel runs do not collide, and the
leftovers of a run that was killed (its pid gone) are deleted by name when
the next run starts.  Everything made is deleted afterwards, even when a test
fails or is interrupted.

`link_down` is a pulled cable: the namespace's end of the veth is set down,
so the root end loses its carrier but keeps its address and route, and every
packet either way is dropped; established TCP connections stay ESTABLISHED on
both sides, with their data unacknowledged, and carry on after `link_up`
(TCP retransmits).  Setting the root end down instead would remove its route,
and packets for the namespace would then follow the default route out of the
machine.  (netem is not available everywhere, so it is not used.)

Where namespaces cannot be made (not root, no `ip`), the `netns` fixture skips
with the reason, except under CI (CI=true), where it fails: CI runs as root and
is the place where these tests must run.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import ROOT, Process

PREFIX = "lbtest-"  # namespace names: lbtest-<worker>-<pid>-<i>
VETH_PREFIX = "lbt"  # veth names: lbt<pid>h<i> (root end), lbt<pid>n<i> (namespace end); at most 15 bytes
POOL = ipaddress.IPv4Network("10.231.0.0/16")  # private; one /24 per lab PC, checked free before use
LOCK = Path(tempfile.gettempdir()) / "labbridge-netns.lock"
_NAMESPACE = re.compile(rf"^{re.escape(PREFIX)}[\w]+-(\d+)-\d+$")
_VETH = re.compile(rf"^{VETH_PREFIX}(\d+)h\d+$")


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be made here (the message says why)."""


@dataclass
class LabPC:
    """One lab PC: a network namespace `name`, reachable from the root namespace at `address`."""

    name: str  # the namespace
    address: str  # inside the namespace: where its servers listen and the frontend connects
    host_address: str  # the root namespace's end of the link (where connections from the frontend come from)
    host_veth: str  # the veth in the root namespace
    veth: str  # the veth inside the namespace

    @property
    def prefix(self) -> list[str]:
        """The command prefix that runs a command inside this namespace."""
        return ["ip", "netns", "exec", self.name]

    def run(self, argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = ROOT) -> Process:
        """Start `argv` inside the namespace, its output in `log` (a tests.processes.Process: stop, signal...)."""
        return Process([*self.prefix, *argv], log, env=env, cwd=cwd)

    def ip(self, *args: str) -> str:
        """`ip ARGS` inside the namespace; its output."""
        return _ip("netns", "exec", self.name, "ip", *args)

    def link_down(self) -> None:
        """Pull the cable: nothing passes either way, established TCP connections hang (see the module doc)."""
        self.ip("link", "set", self.veth, "down")

    def link_up(self) -> None:
        """Plug the cable back in: hanging TCP connections carry on at their next retransmission."""
        self.ip("link", "set", self.veth, "up")

    def link_is_up(self) -> bool:
        """Whether the root end has a carrier (both ends up)."""
        return "LOWER_UP" in _ip("link", "show", self.host_veth)


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing (Debian: apt-get install iproute2)"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    return None


@contextlib.contextmanager
def lab_pcs(n: int) -> Iterator[list[LabPC]]:
    """`n` lab PCs, deleted afterwards whatever happens; NetnsUnavailable where namespaces cannot be made."""
    reason = unavailable_reason()
    if reason:
        raise NetnsUnavailable(reason)
    remove_leftovers()
    made: list[LabPC] = []
    try:
        for _ in range(n):
            made.append(_make(_next_index()))
        yield made
    finally:
        for pc in made:
            _delete(pc.name, pc.host_veth)


class LabNetwork:
    """What the `netns` fixture gives: `netns(n)` makes n more lab PCs, all deleted when the test ends."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack

    def __call__(self, n: int) -> list[LabPC]:
        return self._stack.enter_context(lab_pcs(n))


@pytest.fixture
def netns() -> Iterator[LabNetwork]:
    """Lab PCs for one test (LabNetwork).  Skips where namespaces cannot be made, but fails under CI
    (CI=true), which must run these tests."""
    reason = unavailable_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the network namespace tests (.ci/run installs iproute2)")
        pytest.skip(reason)
    with contextlib.ExitStack() as stack:
        yield LabNetwork(stack)


def remove_leftovers() -> None:
    """Delete namespaces and veths of earlier runs whose process is gone (a run killed before its cleanup)."""
    for name in _namespaces():
        match = _NAMESPACE.match(name)
        if match and _gone(int(match.group(1))) and name not in _mine:
            _delete(name, None)
    for link in _links():
        match = _VETH.match(link)
        if match and _gone(int(match.group(1))) and link not in _mine:
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)


_mine: set[str] = set()  # namespaces and root-end veths this process made and has not deleted yet
_counter = [0]


def _next_index() -> int:
    _counter[0] += 1
    return _counter[0]


def _gone(pid: int) -> bool:
    """The run that made a leftover has ended (or is this process, which has not made it: a reused pid)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _make(index: int) -> LabPC:
    pid, worker = os.getpid(), os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"{PREFIX}{worker}-{pid}-{index}"
    host_veth, veth = f"{VETH_PREFIX}{pid}h{index}", f"{VETH_PREFIX}{pid}n{index}"
    _mine.update((name, host_veth))
    try:
        _ip("netns", "add", name)
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        with open(LOCK, "w") as lock:  # choosing a /24 and taking it is one step for every run on the machine
            fcntl.flock(lock, fcntl.LOCK_EX)
            subnet = _free_subnet()
            host_address, address = (str(subnet[1]), str(subnet[2]))
            _ip("link", "add", host_veth, "type", "veth", "peer", "name", veth, "netns", name)
            _ip("addr", "add", f"{host_address}/24", "dev", host_veth)
        _ip("link", "set", host_veth, "up")
        _ip("netns", "exec", name, "ip", "addr", "add", f"{address}/24", "dev", veth)
        _ip("netns", "exec", name, "ip", "link", "set", veth, "up")
    except BaseException:
        _delete(name, host_veth)
        raise
    return LabPC(name, address, host_address, host_veth, veth)


def _delete(name: str, host_veth: str | None) -> None:
    """Delete a namespace (its veth end goes with it, and so does the peer) and the root end if still there."""
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    if host_veth and host_veth in _links():
        subprocess.run(["ip", "link", "del", host_veth], capture_output=True, check=False)
    _mine.difference_update((name, host_veth))


def _free_subnet() -> ipaddress.IPv4Network:
    """The first /24 of POOL that no route (any table) or address of this machine overlaps."""
    taken: list[ipaddress.IPv4Network] = []
    for route in json.loads(_ip("-j", "-4", "route", "show", "table", "all")):
        dst = route.get("dst", "default")
        if dst != "default":
            taken.append(ipaddress.IPv4Network(dst, strict=False))
    for link in json.loads(_ip("-j", "-4", "addr")):
        for info in link.get("addr_info", []):
            taken.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    for subnet in POOL.subnets(new_prefix=24):
        if not any(subnet.overlaps(other) for other in taken):
            return subnet
    raise NetnsUnavailable(f"no free /24 left in {POOL}")


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def _links() -> list[str]:
    return [link["ifname"] for link in json.loads(_ip("-j", "link", "show"))]


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode:
        raise NetnsUnavailable(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout
