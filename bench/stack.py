"""The processes a benchmark measures, each on its own free port under one temporary directory."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from modelreg.services.devstack import embedded
from modelreg.services.keys.service import with_key_service
from modelreg.shared.settings import Settings

RESULTS_DIR = Path(__file__).parent


@dataclass
class BenchStack:
    workdir: Path
    settings: Settings
    mongodb: embedded.ServerProcess
    kafka: embedded.ServerProcess
    api: embedded.ServerProcess
    worker: embedded.ServerProcess
    mlflow: embedded.ServerProcess | None

    @property
    def api_url(self) -> str:
        return f"http://{embedded.LOOPBACK}:{self.api.port}"


async def create_api_key(settings: Settings, namespace_id: str) -> str:
    """A key for one namespace, made by the project's own key service, as `modelreg keys create` does."""
    key, _ = await with_key_service(settings, lambda keys: keys.create([namespace_id]))
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class WorkerBatches:
    """The worker's batch counters (its Prometheus endpoint): how many, their records, time applying."""

    batches: float = 0.0
    records: float = 0.0
    apply_s: float = 0.0

    def since(self, earlier: WorkerBatches) -> WorkerBatches:
        return WorkerBatches(
            self.batches - earlier.batches, self.records - earlier.records, self.apply_s - earlier.apply_s
        )

    def summary(self) -> str:
        if self.batches <= 0:
            return "the worker wrote no batch"
        return (
            f"the worker took {self.batches:,.0f} batches, {self.records / self.batches:.1f} records each on "
            f"average, {self.apply_s / self.batches * 1000:.1f} ms each applying them to the database (mean)"
        )


async def worker_batches(stack: BenchStack) -> WorkerBatches:
    url = f"http://{embedded.LOOPBACK}:{stack.settings.worker_metrics_port}/metrics"
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(url)).text
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }
    return WorkerBatches(
        values.get("modelreg_worker_batch_size_count", 0.0),
        values.get("modelreg_worker_batch_size_sum", 0.0),
        values.get("modelreg_worker_apply_seconds_sum", 0.0),
    )


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (a server may fork workers)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(child) for child in children)
    return total


def _service(name: str, command: str, settings: Settings, port: int, workdir: Path) -> embedded.ServerProcess:
    return embedded.ServerProcess(
        name=name,
        args=[sys.executable, "-m", "modelreg.services.cli", command],
        port=port,
        url=f"http://{embedded.LOOPBACK}:{port}",
        log_path=workdir / f"{name}.log",
        env=settings.as_env(),
    )


def worker_process(stack: BenchStack, settings: Settings, name: str) -> embedded.ServerProcess:
    """One more worker process with `settings` (its own topic or group), listening for metrics on a port of
    its own; started and stopped by the caller."""
    settings = msgspec.structs.replace(settings, worker_metrics_port=embedded.free_port())
    return _service(name, "worker", settings, settings.worker_metrics_port, stack.workdir)


def mlflow_server(workdir: Path) -> embedded.ServerProcess:
    port = embedded.free_port()
    data = workdir / "mlflow"
    data.mkdir(parents=True, exist_ok=True)
    return embedded.ServerProcess(
        name="mlflow",
        args=[
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{data / 'mlflow.db'}",
            "--default-artifact-root",
            str(data / "artifacts"),
            "--host",
            embedded.LOOPBACK,
            "--port",
            str(port),
            "--workers",
            "1",  # one process, like the API under test
        ],
        port=port,
        url=f"http://{embedded.LOOPBACK}:{port}",
        log_path=workdir / "mlflow.log",
    )


@contextlib.contextmanager
def bench_stack(with_mlflow: bool, keep_dir: bool = False) -> Iterator[BenchStack]:
    workdir = Path(tempfile.mkdtemp(prefix="modelreg-bench-"))
    with contextlib.ExitStack() as stack:
        mongodb = embedded.secantus(workdir / "mongo", log_dir=workdir).start()
        stack.callback(mongodb.stop)
        kafka = embedded.tansu(workdir).start()
        stack.callback(kafka.stop)
        settings = Settings(
            mongodb_url=mongodb.url,
            mongodb_database="bench",
            kafka_bootstrap_servers=kafka.url,
            kafka_idempotent=False,
            api_port=embedded.free_port(),
            worker_metrics_port=embedded.free_port(),
            archive_root=str(workdir / "archives"),
            log_level="WARNING",  # a log line per batch would be measured too
            api_key_pepper=secrets.token_urlsafe(32),
            webhook_allowed_hosts="127.0.0.1",  # the push benchmark's local webhook receiver
        )
        api = _service("api", "api", settings, settings.api_port, workdir)
        worker = _service("worker", "worker", settings, settings.worker_metrics_port, workdir)
        mlflow = mlflow_server(workdir) if with_mlflow else None
        result = BenchStack(workdir, settings, mongodb, kafka, api, worker, mlflow)
        try:
            yield result
        finally:
            for process in (api, worker, mlflow):
                if process is not None:
                    process.stop()
            if not keep_dir and not os.environ.get("MODELREG_BENCH_KEEP"):
                stack.callback(_remove_tree, workdir)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
