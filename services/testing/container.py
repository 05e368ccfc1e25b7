"""`ModelRegistryContainer`: the registry in Docker for other services' tests, testcontainers-style.

```python
with ModelRegistryContainer(mongo_url="mongodb://mongo:27017", kafka_bootstrap="kafka:9092") as registry:
    api = registry.get_api_url()
    key = registry.create_key(admin=True)
```

The image is `deploy/Dockerfile`'s `app` stage:
`docker build -f deploy/Dockerfile --target app -t modelreg .` (from the repository's root).
One container runs the worker and the API (`REGISTRY_COMMAND`), after creating the topics; it is ready
when `/health/ready` answers 200 (MongoDB answers). `mongo_url` and `kafka_bootstrap` are addresses as the
container sees them (a testcontainers network alias, or the host's address). Docker is needed to run it;
without Docker only its configuration, its command and its wait strategy can be exercised (docs/testing.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import HttpWaitStrategy

from modelreg.shared.settings import ENV_PREFIX, Settings

DEFAULT_IMAGE = "modelreg:latest"
API_PORT = 8000
READY_PATH = "/health/ready"
# The API in the foreground (its exit ends the container), the worker beside it; topics first, so the worker
# never waits for them. `exec` keeps the API as the process that gets the container's SIGTERM.
REGISTRY_COMMAND = "set -e; modelreg topics create; modelreg worker & exec modelreg api"
ENTRYPOINT = ["sh", "-c"]


def registry_environment(
    mongo_url: str,
    kafka_bootstrap: str,
    *,
    kafka_idempotent: bool = True,
    database: str = "modelreg",
    port: int = API_PORT,
    settings: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The container's MODELREG_* environment; `settings` adds or overrides variables (full names).

    Raises shared.settings.SettingsError for a value the registry would refuse at start.
    """
    env = {
        f"{ENV_PREFIX}MONGODB_URL": mongo_url,
        f"{ENV_PREFIX}MONGODB_DATABASE": database,
        f"{ENV_PREFIX}KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        f"{ENV_PREFIX}KAFKA_IDEMPOTENT": str(kafka_idempotent).lower(),
        f"{ENV_PREFIX}API_HOST": "0.0.0.0",
        f"{ENV_PREFIX}API_PORT": str(port),
        # The image's user (uid 1000) may write here; /app is not writable.
        f"{ENV_PREFIX}ARCHIVE_ROOT": "/tmp/modelreg/archives",
        f"{ENV_PREFIX}LOG_FORMAT": "json",
        **(settings or {}),
    }
    unknown = [name for name in env if not name.startswith(ENV_PREFIX)]
    if unknown:
        raise ValueError(f"not a {ENV_PREFIX}* setting: {', '.join(unknown)}")
    Settings.from_env(env)  # refuses what `modelreg api` would refuse
    return env


def ready_wait_strategy(port: int = API_PORT, timeout_s: float = 120) -> HttpWaitStrategy:
    """Ready once `GET /health/ready` on the container's `port` answers 200."""
    strategy: HttpWaitStrategy = HttpWaitStrategy(port, READY_PATH).for_status_code(200)
    return strategy.with_startup_timeout(int(timeout_s)).with_poll_interval(0.5)


class ModelRegistryContainer(DockerContainer):
    """The registry's API and worker in one container, against the given MongoDB and Kafka."""

    def __init__(
        self,
        image: str = DEFAULT_IMAGE,
        *,
        mongo_url: str,
        kafka_bootstrap: str,
        kafka_idempotent: bool = True,
        database: str = "modelreg",
        port: int = API_PORT,
        settings: Mapping[str, str] | None = None,
        startup_timeout_s: float = 120,
        **kwargs: Any,
    ) -> None:
        super().__init__(image, **kwargs)
        self.port = port
        self.with_exposed_ports(port)
        self.with_envs(
            **registry_environment(
                mongo_url,
                kafka_bootstrap,
                kafka_idempotent=kafka_idempotent,
                database=database,
                port=port,
                settings=settings,
            )
        )
        self.with_command(REGISTRY_COMMAND)
        self.with_kwargs(**{**self._kwargs, "entrypoint": ENTRYPOINT})
        self.waiting_for(ready_wait_strategy(port, startup_timeout_s))

    def get_api_url(self) -> str:
        """The API as the host reaches it."""
        return f"http://{self.get_container_host_ip()}:{self.get_exposed_port(self.port)}"

    def create_key(self, *namespaces: str, admin: bool = False) -> str:
        """A new API key (`modelreg keys create` inside the container): for `namespaces`, or every one."""
        args = ["modelreg", "keys", "create", *(f"--namespace={n}" for n in namespaces)]
        if admin:
            args.append("--admin")
        result = self.exec(args)
        output = result.output.decode(errors="replace") if result.output else ""
        if result.exit_code != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.exit_code}): {output.strip()}")
        return output.strip().splitlines()[-1]
