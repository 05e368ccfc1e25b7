"""`ModelRegistryContainer` without Docker (there is no daemon here): its configuration, and its command and
wait strategy run against a local process started exactly as the container would start it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import testcontainers.core.container as tc_container

from modelreg.services.devstack.embedded import free_port
from modelreg.services.testing.container import (
    API_PORT,
    ENTRYPOINT,
    READY_PATH,
    REGISTRY_COMMAND,
    ModelRegistryContainer,
    ready_wait_strategy,
    registry_environment,
)
from modelreg.services.testing.infra import Infra
from modelreg.shared.settings import Settings, SettingsError


class NoDocker:
    """Stands in for testcontainers' Docker client: constructing a container needs no daemon then."""

    def __init__(self, **_: object) -> None:
        pass


@pytest.fixture
def no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tc_container, "DockerClient", NoDocker)


def test_the_container_runs_api_and_worker_against_the_given_servers(no_docker) -> None:
    container = ModelRegistryContainer(
        mongo_url="mongodb://mongo:27017",
        kafka_bootstrap="kafka:9092",
        kafka_idempotent=False,
        settings={"MODELREG_EVENTS_TOPIC": "ev"},
    )
    assert container.image.endswith("modelreg:latest")
    assert container.ports == {str(API_PORT): None}  # exposed; Docker picks the host port
    assert container._command == REGISTRY_COMMAND and container._kwargs["entrypoint"] == ENTRYPOINT
    settings = Settings.from_env(container.env)
    assert (
        settings.mongodb_url == "mongodb://mongo:27017" and settings.kafka_bootstrap_servers == "kafka:9092"
    )
    assert settings.kafka_idempotent is False and settings.events_topic == "ev"
    assert (settings.api_host, settings.api_port) == ("0.0.0.0", API_PORT)
    strategy = container._wait_strategy
    assert (strategy._port, strategy._path, strategy._status_codes) == (API_PORT, READY_PATH, {200})


def test_a_setting_the_registry_would_refuse_is_refused_at_once(no_docker) -> None:
    with pytest.raises(SettingsError):
        ModelRegistryContainer(mongo_url="m", kafka_bootstrap="k", settings={"MODELREG_API_PORT": "http"})
    with pytest.raises(ValueError, match="not a MODELREG_"):
        registry_environment("m", "k", settings={"EVENTS_TOPIC": "ev"})


class LocalTarget:
    """What a wait strategy sees of a container, for a local process listening on `port`."""

    def __init__(self, port: int) -> None:
        self.port = port

    def get_container_host_ip(self) -> str:
        return "127.0.0.1"

    def get_exposed_port(self, port: int) -> int:
        assert port == API_PORT
        return self.port


def test_waiting_gives_up_when_nothing_becomes_ready() -> None:
    with pytest.raises(TimeoutError, match=READY_PATH):
        ready_wait_strategy(timeout_s=1).wait_until_ready(LocalTarget(free_port()))


def test_the_command_starts_a_registry_the_wait_strategy_sees_ready(
    infra: Infra, tmp_path: Path, no_docker, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, suffix = free_port(), uuid.uuid4().hex[:8]
    env = registry_environment(
        infra.mongodb_url,
        infra.kafka_bootstrap_servers,
        kafka_idempotent=infra.kafka_idempotent,
        database=f"test_{suffix}",
        settings={
            "MODELREG_API_HOST": "127.0.0.1",  # the container listens everywhere; loopback does here
            "MODELREG_API_PORT": str(port),
            "MODELREG_ARCHIVE_ROOT": str(tmp_path / "archives"),
            "MODELREG_EVENTS_TOPIC": f"events-{suffix}",
            "MODELREG_DLQ_TOPIC": f"events-{suffix}.dlq",
            "MODELREG_COMMANDS_TOPIC": f"commands-{suffix}",
            "MODELREG_CONSUMER_GROUP": f"worker-{suffix}",
        },
    )
    # The image's `modelreg` is the one beside this interpreter here.
    process_env = {
        **os.environ,
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    log = (tmp_path / "registry.log").open("wb")
    registry = subprocess.Popen(
        [*ENTRYPOINT, REGISTRY_COMMAND],
        env=process_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        ready_wait_strategy(timeout_s=120).wait_until_ready(LocalTarget(port))
        assert httpx.get(f"http://127.0.0.1:{port}/health/ready").json()["status"] == "ok"
        commands = subprocess.run(
            ["ps", "-ww", "-o", "args=", "-g", str(registry.pid)], capture_output=True, text=True
        )
        assert "worker" in commands.stdout and "api" in commands.stdout

        # create_key runs `modelreg keys create` in the container: here, beside the process.
        container = ModelRegistryContainer(
            mongo_url=infra.mongodb_url, kafka_bootstrap=infra.kafka_bootstrap_servers
        )

        def exec_locally(args: list[str]) -> SimpleNamespace:
            done = subprocess.run(args, env=process_env, capture_output=True, timeout=120)
            return SimpleNamespace(exit_code=done.returncode, output=done.stdout + done.stderr)

        monkeypatch.setattr(container, "exec", exec_locally)
        key = container.create_key(admin=True)
        answer = httpx.get(
            f"http://127.0.0.1:{port}/v1/namespaces/any/models", headers={"Authorization": f"Bearer {key}"}
        )
        assert answer.status_code == 200
        with pytest.raises(RuntimeError, match="keys create"):
            container.create_key()  # neither a namespace nor admin
    finally:
        os.killpg(registry.pid, signal.SIGTERM)
        registry.wait(60)
        log.close()
