"""A real 6-node Redis Cluster for tests and ``benchmarks.service --redis-cluster``.

Three masters and three replicas on 127.0.0.1, one temp folder per node, created with
``redis-cli --cluster create``, node timeout 1 s (a killed master's replica takes over in about
2 s). Ports are below 55536: the cluster bus listens on port + 10000.

``redis_cluster_session`` (one cluster per session and server binary: ``redis-server``, and
``valkey-server`` when it is on PATH) and ``redis_cluster`` (per test: every node running, every
replica in sync, every master emptied) are the fixtures; ``tests/test_redis_cluster.py`` imports
them. Waiting for the cluster is a bounded poll of the real servers, never a fixed sleep.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

__all__ = ["LocalCluster", "redis_cluster", "redis_cluster_session", "start_cluster"]

NODE_TIMEOUT_MS = 1000
_READY_TIMEOUT = 30.0
_BUS_OFFSET = 10_000
_MAX_PORT = 65_535 - _BUS_OFFSET


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_port(taken: set[int]) -> int:
    """A free port below 55536 whose bus port (+10000) is free too."""
    rng = random.SystemRandom()
    for _ in range(1000):
        port = rng.randrange(20_000, _MAX_PORT)
        pair = {port, port + _BUS_OFFSET}
        if not taken & pair and all(_port_free(each) for each in pair):
            return port
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class Node:
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2.0, socket_connect_timeout=1.0)


class LocalCluster:
    """Six ``redis-server --cluster-enabled yes`` processes made into one cluster."""

    def __init__(self, binary: str, cli: str, workdir: Path, *, nodes: int = 6) -> None:
        self.binary = binary
        self.cli = cli
        ports: set[int] = set()
        self.nodes: list[Node] = []
        for index in range(nodes):
            port = _cluster_port(ports)
            ports |= {port, port + _BUS_OFFSET}
            folder = workdir / f"node{index}"
            folder.mkdir(parents=True)
            self.nodes.append(Node(port, folder))

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        """The port of a running node, to give a cluster client as its startup node."""
        return next(node.port for node in self.nodes if node.running)

    @property
    def address(self) -> str:
        """``host:port`` of a running node."""
        return f"{self.host}:{self.port}"

    def _start_node(self, node: Node) -> None:
        argv = [self.binary, "--port", str(node.port), "--bind", "127.0.0.1"]
        argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        argv += ["--cluster-node-timeout", str(NODE_TIMEOUT_MS)]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(node.workdir)]
        argv += ["--logfile", str(node.workdir / "server.log"), "--daemonize", "no"]
        # A replica's first sync starts at once (the default waits 5 s for more replicas).
        argv += ["--repl-diskless-sync-delay", "0"]
        node.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def start(self) -> None:
        """Start the nodes, create the cluster and wait until it is ready."""
        try:
            for node in self.nodes:
                self._start_node(node)
            self._poll(lambda: all(_pings(node) for node in self.nodes), "the nodes to start")
            names = [node.name for node in self.nodes]
            subprocess.run(
                [
                    self.cli,
                    "--cluster",
                    "create",
                    *names,
                    "--cluster-replicas",
                    "1",
                    "--cluster-yes",
                ],
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=_READY_TIMEOUT,
            )
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every node (SIGKILL: nothing of theirs is kept) and wait for each."""
        for node in self.nodes:
            process, node.process = node.process, None
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()

    # -- state -------------------------------------------------------------------------------

    def _poll(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.05)  # a poll of real servers: bounded by the deadline
        raise RuntimeError(f"redis cluster: timed out waiting for {what}")

    def _info(self, node: Node, section: str) -> dict[str, object]:
        with node.client() as client:
            if section == "cluster":
                return dict(client.execute_command("CLUSTER INFO"))
            return dict(client.info(section))

    def _ready(self) -> bool:
        try:
            masters = 0
            for node in self.nodes:
                if not node.running:
                    return False
                if self._info(node, "cluster").get("cluster_state") != "ok":
                    return False
                replication = self._info(node, "replication")
                if replication.get("role") == "master":
                    masters += 1
                    continue
                if replication.get("master_link_status") != "up":
                    return False
                if replication.get("master_sync_in_progress"):
                    return False
            return masters == len(self.nodes) // 2
        except (redis.RedisError, OSError):
            return False

    def wait_ready(self) -> None:
        """Until every node is up, the cluster ``ok`` and every replica in sync."""
        self._poll(self._ready, "cluster_state:ok with every replica in sync")

    def master_of(self, key: str) -> Node:
        """The running node that serves ``key``'s slot as master."""
        live = next(node for node in self.nodes if node.running)
        with live.client() as client:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
            for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
                if int(start) <= slot <= int(end):
                    port = int(master[1])
                    return next(node for node in self.nodes if node.port == port)
        raise LookupError(f"no master serves slot {slot}")

    def _replicas_have(self, key: str) -> bool:
        master = self.master_of(key)
        replicas = 0
        for node in self.nodes:
            if node is master or not node.running:
                continue
            with node.client() as client:
                if self._info(node, "replication").get("master_port") != master.port:
                    continue
                client.execute_command("READONLY")  # a replica answers reads of its slots
                if not client.exists(key):
                    return False
                replicas += 1
        return replicas > 0

    def wait_replicated(self, key: str) -> None:
        """Until ``key`` is on its master's replica (replication is asynchronous: a write
        acknowledged just before a master dies may be lost with it)."""
        self._poll(lambda: self._replicas_have(key), f"{key!r} to reach a replica")

    def kill_master_of(self, key: str) -> Node:
        """SIGKILL the master of ``key``'s slot; its replica takes over within ~2 s."""
        node = self.master_of(key)
        assert node.process is not None
        node.process.send_signal(signal.SIGKILL)
        node.process.wait()
        return node

    def _taken_over(self, dead: Node, key: str) -> bool:
        try:
            for node in self.nodes:
                if node.running and self._info(node, "cluster").get("cluster_state") != "ok":
                    return False
            return self.master_of(key) is not dead
        except (redis.RedisError, OSError, LookupError):
            return False

    def wait_for_takeover(self, dead: Node, key: str) -> float:
        """Seconds until a replica serves ``key``'s slot and the cluster is ``ok`` again."""
        started = time.monotonic()
        self._poll(lambda: self._taken_over(dead, key), "a replica to take over")
        return time.monotonic() - started

    def heal(self) -> None:
        """Restart stopped nodes (they rejoin as replicas) and wait until all are in sync."""
        stopped = [node for node in self.nodes if not node.running]
        for node in stopped:
            self._start_node(node)
        if stopped:
            self.wait_ready()

    def flush(self) -> None:
        for node in self.nodes:
            with node.client() as client:
                if client.execute_command("ROLE")[0] in (b"master", "master"):
                    client.flushall()


def _pings(node: Node) -> bool:
    try:
        with node.client() as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def start_cluster(binary: str, workdir: Path) -> LocalCluster:
    """A started 6-node cluster of ``binary`` (its own ``-cli`` beside it, else redis-cli)."""
    stem = Path(binary).name.removesuffix("-server")
    cli = shutil.which(f"{stem}-cli") or shutil.which("redis-cli")
    if cli is None:
        raise RuntimeError("redis-cli is not installed (apt-get install redis-tools)")
    for attempt in range(3):
        cluster = LocalCluster(binary, cli, workdir / f"try{attempt}")
        try:
            cluster.start()
        except (RuntimeError, subprocess.CalledProcessError):
            if attempt == 2:  # a port taken between the probe and the start: try others
                raise
            continue
        return cluster
    raise AssertionError("unreachable")


SERVERS = ("redis-server", "valkey-server")


@pytest.fixture(scope="session", params=SERVERS)
def redis_cluster_session(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    """A 6-node cluster of ``redis-server`` (and one of ``valkey-server`` when installed)."""
    program = str(request.param)
    binary = shutil.which(program)
    if binary is None or (program == "redis-server" and not shutil.which("redis-cli")):
        reason = f"{program} (and its cli) is not installed"
        if program == "redis-server" and os.environ.get("HUB_AUTH_REQUIRE_REDIS") == "1":
            pytest.fail(f"{reason}, and HUB_AUTH_REQUIRE_REDIS=1 requires it")
        pytest.skip(reason)
    cluster = start_cluster(binary, tmp_path_factory.mktemp(program))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster(redis_cluster_session: LocalCluster) -> Iterator[LocalCluster]:
    """The session's cluster with every node running and in sync, and every master empty."""
    redis_cluster_session.heal()
    redis_cluster_session.flush()
    yield redis_cluster_session
