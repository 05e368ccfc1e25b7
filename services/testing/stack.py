"""The registry for other services' tests: the API and the worker (optionally the Ray Serve bridge on a local
Ray) as real processes on free ports, against MongoDB and Kafka from `infra.start_infra`.

`RegistryStack` is what the `modelreg_stack` fixture of the pytest plugin yields. Its helpers are blocking
calls, usable from sync and async tests alike (the Kafka producer runs on a private event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec

from modelreg.services import cli
from modelreg.services.devstack import embedded
from modelreg.services.testing.infra import Infra, start_infra
from modelreg.services.testing.processes import ServiceProcess
from modelreg.shared.adapters import kafka
from modelreg.shared.adapters.event_producer import DeploymentEventProducer
from modelreg.shared.adapters.mongo.databases import drop_database
from modelreg.shared.contracts import DeploymentEvent, DeploymentStatus, EventType
from modelreg.shared.event_building import SequenceClock
from modelreg.shared.settings import Settings

T = TypeVar("T")
READY_TIMEOUT_S = 120.0


class StackError(RuntimeError):
    """The registry did not start, or did not stop cleanly (a process or a port left behind)."""


@dataclass(frozen=True)
class Topics:
    events: str
    dlq: str
    commands: str


@dataclass(frozen=True)
class RegisteredModel:
    namespace_id: str
    model_id: str
    endpoint: str  # where the model will answer once deployed (what its `deployment.ready` event carries)
    body: dict[str, Any]


@dataclass
class Namespace:
    """A namespace of one test: `id`, and `key`, an API key for it alone (created on first use)."""

    id: str
    _create_key: Callable[[str], str] = field(repr=False)
    _key: str | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = self._create_key(self.id)
        return self._key


def run_blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to its end from sync code, even while the calling thread runs an event loop."""
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(make()))
        except BaseException as exc:  # handed to the caller
            errors.append(exc)

    thread = threading.Thread(target=target, name="modelreg-testing")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on `port` again (connections closing in TIME_WAIT do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((embedded.LOOPBACK, port))
        except OSError:
            return False
    return True


def tiny_archive() -> bytes:
    """A `.tar.gz` the registry accepts (the API checks archives, not model files)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in (("config.json", b"{}"), ("model.onnx", b"not a real model")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class RegistryStack:
    """The registry's processes for one test session; `start()` then `stop()` (or use it as a context)."""

    def __init__(self, workdir: Path, *, with_bridge: bool = False) -> None:
        self.workdir = workdir
        self.with_bridge = with_bridge
        self._exit = contextlib.ExitStack()
        self.infra: Infra | None = None
        self.settings = Settings()
        self.admin_key = ""
        self.processes: list[ServiceProcess] = []
        self._servers: list[embedded.ServerProcess] = []
        self._ports: list[int] = []
        self.clock = SequenceClock()

    # -- what tests use --------------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    @property
    def kafka_bootstrap_servers(self) -> str:
        return self.settings.kafka_bootstrap_servers

    @property
    def kafka_idempotent(self) -> bool:
        return self.settings.kafka_idempotent

    @property
    def mongodb_url(self) -> str:
        return self.settings.mongodb_url

    @property
    def database(self) -> str:
        return self.settings.mongodb_database

    @property
    def topics(self) -> Topics:
        return Topics(self.settings.events_topic, self.settings.dlq_topic, self.settings.commands_topic)

    def namespace_key(self, *namespaces: str) -> str:
        """A new API key for these namespaces (`modelreg keys create`)."""
        if not namespaces:
            raise ValueError("name at least one namespace (the admin key is `admin_key`)")
        args = [arg for namespace in namespaces for arg in ("--namespace", namespace)]
        return self._create_key(args)

    def new_namespace(self, prefix: str = "t") -> Namespace:
        """A namespace id no other test uses, with its own key."""
        return Namespace(f"{prefix}-{uuid.uuid4().hex[:12]}", self.namespace_key)

    def client(self, key: str | None = None, **options: Any) -> httpx.Client:
        """An HTTP client for the API with `key` (default: the admin key); close it (or use `with`).
        `options` go to `httpx.Client` (`timeout`, 30 s unless given; `headers` beside the key's)."""
        headers = {**options.pop("headers", {}), "Authorization": f"Bearer {key or self.admin_key}"}
        options.setdefault("timeout", 30)
        return httpx.Client(base_url=self.api_url, headers=headers, **options)

    def register_model(
        self,
        namespace_id: str,
        *,
        name: str | None = None,
        version: str = "1.0.0",
        model_format: str = "onnx",
        archive: bytes | None = None,
        key: str | None = None,
        **fields: str,
    ) -> RegisteredModel:
        """Upload a model (a tiny archive unless given) through the API; the registry picks its id.

        `fields`: the upload's other form fields (`task_type`, `num_cpus`, `memory_gb`, …; docs/api.md).
        """
        form = {
            "name": name or f"model-{uuid.uuid4().hex[:8]}",
            "version": version,
            "model_format": model_format,
        }
        files = {
            "file": ("model.tar.gz", archive if archive is not None else tiny_archive(), "application/gzip")
        }
        with self.client(key) as http:
            response = http.post(
                f"/v1/namespaces/{namespace_id}/models", data={**form, **fields}, files=files
            )
        if response.status_code != 201:
            raise AssertionError(f"upload refused: {response.status_code} {response.text}")
        body: dict[str, Any] = response.json()
        return RegisteredModel(namespace_id, body["model_id"], body["endpoint"], body)

    def get_model(self, namespace_id: str, model_id: str, *, key: str | None = None) -> dict[str, Any]:
        with self.client(key) as http:
            response = http.get(f"/v1/namespaces/{namespace_id}/models/{model_id}")
        if response.status_code != 200:
            raise AssertionError(f"GET model: {response.status_code} {response.text}")
        model: dict[str, Any] = response.json()["model"]
        return model

    def publish_event(
        self, namespace_id: str, model_id: str, event_type: EventType | str, **fields: Any
    ) -> DeploymentEvent:
        """Publish one deployment event (`"ready"`, `"deployment.failed"`, `EventType.DELETED`, …) with
        `DeploymentEventProducer`, and return it once the broker acknowledged it. `fields` as the
        producer's `event()`: endpoint, base_image, message, cluster, …"""

        async def publish() -> DeploymentEvent:
            async with self.producer() as producer:
                return await producer.send(event_type, namespace_id, model_id, **fields)

        return run_blocking(publish)

    def producer(self, **options: Any) -> DeploymentEventProducer:
        """A `DeploymentEventProducer` to this stack's events topic (sequences from the stack's clock)."""
        options.setdefault("idempotent", self.kafka_idempotent)
        options.setdefault("clock", self.clock)
        return DeploymentEventProducer(self.kafka_bootstrap_servers, self.settings.events_topic, **options)

    def wait_for_status(
        self,
        namespace_id: str,
        model_id: str,
        status: DeploymentStatus | str,
        timeout: float = 30,
        *,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Poll the API until the model's `deployment_status` is `status`; returns the model, or raises
        AssertionError with the last one seen."""
        wanted = DeploymentStatus(status)
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | str = "no answer"
        with self.client(key) as http:
            while True:
                response = http.get(f"/v1/namespaces/{namespace_id}/models/{model_id}")
                if response.status_code == 200:
                    model: dict[str, Any] = response.json()["model"]
                    if model.get("deployment_status") == wanted:
                        return model
                    last = model
                else:
                    last = f"{response.status_code} {response.text}"
                if time.monotonic() > deadline:
                    raise AssertionError(f"{namespace_id}/{model_id} not {wanted} after {timeout}s: {last}")
                self.check_alive()
                time.sleep(0.2)

    def check_alive(self) -> None:
        for process in self.processes:
            if not process.alive:
                raise StackError(f"modelreg {process.command} exited\n{process.log_tail()}")

    # -- start and stop --------------------------------------------------------------------------------------

    def start(self) -> RegistryStack:
        try:
            self._start()
        except BaseException:
            self.stop(check=False)
            raise
        return self

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        infra = self.infra = start_infra(self._exit, self.workdir / "infra")
        suffix = uuid.uuid4().hex[:10]
        self.settings = Settings(
            mongodb_url=infra.mongodb_url,
            mongodb_database=f"modelreg_test_{suffix}",
            kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
            kafka_idempotent=infra.kafka_idempotent,
            events_topic=f"model-deployment-events-{suffix}",
            dlq_topic=f"model-deployment-events-{suffix}.dlq",
            commands_topic=f"model-deployment-commands-{suffix}",
            cluster_health_topic=f"model-cluster-health-{suffix}",
            consumer_group=f"modelreg-worker-{suffix}",
            bridge_consumer_group=f"modelreg-bridge-{suffix}",
            serve_app_prefix=f"t{suffix}",  # apps of its own, should the Ray cluster be shared
            api_port=embedded.free_port(),
            archive_root=str(self.workdir / "archives"),
            bridge_work_dir=str(self.workdir / "bridge"),
            worker_batch_timeout_ms=200,
            # The worker starts once both its consumer groups joined, about half a session each on tansu:
            # with the 10 s default, a test's first events waited some 10 s for it.
            worker_session_timeout_ms=3_000,
            worker_heartbeat_interval_ms=500,
            worker_retry_max_backoff_s=1.0,
            bridge_retry_max_backoff_s=1.0,
            log_format="json",
        )
        self._ports.append(self.settings.api_port)
        self._ports.extend(self._embedded_ports(infra))
        run_blocking(lambda: kafka.ensure_topics(self.settings, self.settings.topics))
        self.admin_key = self._create_key(["--admin"])
        if self.with_bridge:
            self._start_ray()
        logs = self.workdir / "logs"
        api = self._spawn("api", logs)
        self._spawn("worker", logs)
        if self.with_bridge:
            self._spawn("bridge", logs)
        self._wait_ready(api)

    def _embedded_ports(self, infra: Infra) -> list[int]:
        """The ports of the servers started for this stack (not those of URLs from the environment)."""
        started = [
            url
            for url, source in (
                (infra.mongodb_url, "embedded:secantus"),
                (infra.kafka_bootstrap_servers, "embedded:tansu"),
            )
            if source in infra.source
        ]
        return [int(url.rpartition(":")[2]) for url in started]

    def _start_ray(self) -> None:
        serve_port = embedded.free_port()
        if ray_address := os.environ.get("MODELREG_RAY_ADDRESS"):
            # A cluster of its own: Serve may already listen there (MODELREG_SERVE_PORT says where).
            serve_port = int(os.environ.get("MODELREG_SERVE_PORT", serve_port))
            self.settings = msgspec.structs.replace(self.settings, ray_address=ray_address)
        else:
            # Ray puts Unix sockets under its temp dir, whose path must stay short.
            temp_dir = Path(tempfile.mkdtemp(prefix="mr-ray-", dir="/tmp"))
            self._exit.callback(shutil.rmtree, temp_dir, ignore_errors=True)
            head = embedded.ray_head(temp_dir, self.workdir / "logs")
            self._exit.callback(head.stop)
            self._servers.append(head)
            head.start(timeout_s=120)
            embedded.wait_for_ray(head, timeout_s=180)
            self._ports += [head.port, serve_port]  # Serve's proxy stops with the cluster
            self.settings = msgspec.structs.replace(self.settings, ray_address=head.url)
        self.settings = msgspec.structs.replace(self.settings, serve_port=serve_port)

    def _spawn(self, command: str, logs: Path) -> ServiceProcess:
        process = ServiceProcess(command, self.settings, logs / f"{command}.log").start()
        self.processes.append(process)
        return process

    def _wait_ready(self, api: ServiceProcess) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/health/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise StackError(f"the API is not ready after {READY_TIMEOUT_S}s\n{api.log_tail()}")

    def _create_key(self, args: list[str]) -> str:
        result = subprocess.run(
            [sys.executable, "-m", cli.__name__, "keys", "create", *args],
            env={**os.environ, **self.settings.as_env()},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise StackError(f"modelreg keys create {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout.strip().splitlines()[-1]

    def stop(self, *, check: bool = True) -> None:
        """Stop every process, drop the test database, stop the embedded servers; with `check`, raise
        StackError if a process still runs or a port is still taken afterwards."""
        for process in reversed(self.processes):
            process.stop(timeout_s=30)
        if self.infra is not None:
            with contextlib.suppress(Exception):
                drop_database(self.settings.mongodb_url, self.settings.mongodb_database)
        self._exit.close()
        if check:
            self.check_stopped()

    def check_stopped(self) -> None:
        left = [f"modelreg {p.command} (pid {p.pid})" for p in self.processes if p.alive]
        left += [f"{s.name} (pid {s.process.pid})" for s in self._servers if s.process and s.running]
        taken = [port for port in self._ports if not port_is_free(port)]
        if left or taken:
            raise StackError(f"left behind: processes {left or 'none'}, ports still taken {taken or 'none'}")

    @property
    def ports(self) -> list[int]:
        """The ports the stack listened on (API, embedded servers, Ray); all free again after `stop()`."""
        return list(self._ports)

    def __enter__(self) -> RegistryStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def registry_stack(workdir: Path, *, with_bridge: bool = False) -> Iterator[RegistryStack]:
    with RegistryStack(workdir, with_bridge=with_bridge) as stack:
        yield stack
