"""Where test MongoDB and Kafka come from, in this order (the project's tests and the pytest plugin alike):

1. URLs in the environment (MODELREG_MONGODB_URL, MODELREG_KAFKA_BOOTSTRAP_SERVERS);
2. testcontainers, when a Docker daemon answers;
3. embedded servers (SecantusDB, tansu) started on free ports.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from modelreg.services.devstack import embedded


@dataclass(frozen=True)
class Infra:
    mongodb_url: str
    kafka_bootstrap_servers: str
    kafka_idempotent: bool
    source: str


def docker_available() -> bool:
    """Whether a Docker daemon answers (the `docker` client comes with testcontainers)."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def start_infra(stack: contextlib.ExitStack, workdir: Path) -> Infra:
    mongodb_url = os.environ.get("MODELREG_MONGODB_URL")
    kafka_servers = os.environ.get("MODELREG_KAFKA_BOOTSTRAP_SERVERS")
    idempotent_env = os.environ.get("MODELREG_KAFKA_IDEMPOTENT")
    sources: list[str] = []
    use_docker = (not mongodb_url or not kafka_servers) and docker_available()
    kafka_idempotent = True
    if not mongodb_url:
        if use_docker:
            from testcontainers.community.mongodb import MongoDbContainer

            mongodb_url = str(stack.enter_context(MongoDbContainer("mongo:7")).get_connection_url())
            sources.append("testcontainers:mongo")
        else:
            server = embedded.secantus(workdir / "mongo", log_dir=workdir).start()
            stack.callback(server.stop)
            mongodb_url = server.url
            sources.append("embedded:secantus")
    else:
        sources.append("env:mongodb")
    if not kafka_servers:
        if use_docker:
            from testcontainers.community.kafka import KafkaContainer

            kafka_servers = str(stack.enter_context(KafkaContainer().with_kraft()).get_bootstrap_server())
            sources.append("testcontainers:kafka")
        else:
            server = embedded.tansu(workdir).start()
            stack.callback(server.stop)
            kafka_servers = server.url
            kafka_idempotent = False  # tansu does not support the idempotent producer
            sources.append("embedded:tansu")
    else:
        sources.append("env:kafka")
    if idempotent_env is not None:
        kafka_idempotent = idempotent_env.lower() in ("1", "true", "yes")
    return Infra(mongodb_url, kafka_servers, kafka_idempotent, "+".join(sources))
