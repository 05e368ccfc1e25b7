"""`modelreg dev`: the whole stack on one machine.

Starts SecantusDB (data under ./.modelreg/) and the tansu broker unless their URLs are given, creates the
topics, then runs the API and the worker as child processes, exactly as production runs them. Unless
--no-ray: a local Ray cluster (unless MODELREG_RAY_ADDRESS is given) and the Ray Serve bridge, then the
demo model is registered, deployed and followed until its endpoint answers (unless --no-demo).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from modelreg.services.devstack import embedded
from modelreg.services.keys.service import dev_key_banner, with_key_service
from modelreg.shared.adapters import kafka
from modelreg.shared.serve_routes import serve_base_url
from modelreg.shared.settings import Settings

STATE_DIR = Path(".modelreg")


def _wait_http_ok(url: str, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout_s}s")


class DevStack:
    def __init__(self, settings: Settings, state_dir: Path = STATE_DIR) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.servers: list[embedded.ServerProcess] = []
        self.children: list[subprocess.Popen[bytes]] = []
        self.temp_dirs: list[Path] = []

    def start_servers(self) -> Settings:
        """Start embedded MongoDB/Kafka where no URL was given; returns settings pointing at them."""
        overrides: dict[str, object] = {}
        logs = self.state_dir / "logs"
        if "MODELREG_MONGODB_URL" not in os.environ:
            mongo = embedded.secantus(self.state_dir / "mongodb", log_dir=logs).start()
            self.servers.append(mongo)
            overrides["mongodb_url"] = mongo.url
        if "MODELREG_KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
            broker = embedded.tansu(logs).start()
            self.servers.append(broker)
            overrides["kafka_bootstrap_servers"] = broker.url
            if "MODELREG_KAFKA_IDEMPOTENT" not in os.environ:
                overrides["kafka_idempotent"] = False
        if overrides:
            import msgspec

            self.settings = msgspec.structs.replace(self.settings, **overrides)
        return self.settings

    def start_ray(self) -> Settings:
        """Start a local Ray cluster unless MODELREG_RAY_ADDRESS names one; returns the settings for it."""
        if "MODELREG_RAY_ADDRESS" in os.environ:
            return self.settings
        import msgspec

        # Ray puts Unix sockets under its temp dir, whose path must stay short.
        temp_dir = Path(tempfile.mkdtemp(prefix="mr-ray-", dir="/tmp"))
        self.temp_dirs.append(temp_dir)
        head = embedded.ray_head(temp_dir, self.state_dir / "logs", num_cpus=max(os.cpu_count() or 2, 2))
        self.servers.append(head)
        head.start(timeout_s=120)
        embedded.wait_for_ray(head, timeout_s=180)
        self.settings = msgspec.structs.replace(self.settings, ray_address=head.url)
        return self.settings

    def spawn(self, *command: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.settings.as_env()}
        child = subprocess.Popen([sys.executable, "-m", "modelreg.services.cli", *command], env=env)
        self.children.append(child)
        return child

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in reversed(self.children):
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
        for server in reversed(self.servers):
            server.stop()
        for temp_dir in self.temp_dirs:
            shutil.rmtree(temp_dir, ignore_errors=True)


def register_local_cluster(settings: Settings) -> None:
    """`modelreg dev` has one Ray cluster: registered as the default cluster `local` (kept if it exists,
    with this run's addresses)."""
    from modelreg.services.cluster_admin import add_cluster, validated
    from modelreg.shared.cluster_routing import DEFAULT_CLUSTER

    serve_url = settings.serve_public_url or f"http://{settings.serve_host}:{settings.serve_port}"
    registration = validated(DEFAULT_CLUSTER, settings.ray_address, serve_url, {})
    asyncio.run(add_cluster(settings, registration, exist_ok=True))


def run_dev_stack(settings: Settings, with_ray: bool = True, demo: bool = True) -> int:
    stack = DevStack(settings)
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    def interrupted() -> bool:
        return stopping or any(child.poll() is not None for child in stack.children)

    try:
        settings = stack.start_servers()
        if with_ray:
            print("modelreg dev: starting Ray …", flush=True)
            settings = stack.start_ray()
        asyncio.run(kafka.ensure_topics(settings, settings.topics))
        if with_ray:
            register_local_cluster(settings)
        dev_key_file = stack.state_dir / "dev-api-key"
        dev_key = asyncio.run(with_key_service(settings, lambda keys: keys.ensure_dev_key(dev_key_file)))
        api = stack.spawn("api")
        stack.spawn("worker")
        stack.spawn("webhooks")
        if with_ray:
            stack.spawn("bridge")
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        _wait_http_ok(f"{api_url}/health/ready", 60, api)
        print_banner(settings, api_url, with_ray=with_ray)
        print(dev_key_banner(dev_key, dev_key_file), flush=True)
        if with_ray and demo:
            from modelreg.services.devstack.demo import run_demo

            run_demo(settings, stack.state_dir, api_url, interrupted, api_key=dev_key)
        while not stopping:
            if any(child.poll() is not None for child in stack.children):
                print("modelreg dev: a process exited; stopping the stack", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    finally:
        stack.stop()


def print_banner(settings: Settings, api_url: str, with_ray: bool = False) -> None:
    ray_lines = [
        f"  Ray dashboard  {settings.ray_address}  (the bridge drives Serve through it)",
        f"  Ray Serve      {serve_base_url(settings)}  (model endpoints)",
    ]
    ray_export = f" MODELREG_RAY_ADDRESS={settings.ray_address}" if with_ray else ""
    lines = [
        "",
        "modelreg dev stack is up",
        f"  API            {api_url}  (OpenAPI: {api_url}/schema/swagger)",
        f"  Console        {api_url}/ui  (sign in with the API key printed below)",
        f"  MongoDB        {settings.mongodb_url}  database {settings.mongodb_database}",
        f"  Kafka          {settings.kafka_bootstrap_servers}",
        f"  Topics         {', '.join(settings.topics)}",
        *(ray_lines if with_ray else []),
        "",
        "Use these in another shell:",
        f"  export MODELREG_MONGODB_URL={settings.mongodb_url} "
        f"MODELREG_KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers} "
        f"MODELREG_KAFKA_IDEMPOTENT={str(settings.kafka_idempotent).lower()}{ray_export}",
        "Press Ctrl-C to stop.",
        "",
    ]
    print("\n".join(lines), flush=True)
