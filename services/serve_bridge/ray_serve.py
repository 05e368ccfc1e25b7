"""The Ray adapter: the only module of the bridge that imports ray. Blocking calls, one thread at a time.

Ray Serve's client is cached per driver session; after the Serve controller or the cluster restarts the
cached handle keeps failing with ActorDiedError, so `reconnect()` starts a new driver session.
"""

from __future__ import annotations

from typing import Any

import ray
import ray.exceptions
from ray import serve
from ray.serve.exceptions import RayServeException

from services.serve_bridge.model_server import ModelServer, ModelSpec
from services.serve_bridge.transitions import AppObservation, DeploymentObservation
from shared.settings import Settings


class ServeUnavailable(RuntimeError):
    """Ray or the Serve controller cannot be reached; reconnect and try again."""


class ServeRejected(RuntimeError):
    """Ray Serve refused the request (e.g. a route prefix already taken); trying again will not help."""


def _classify(exc: BaseException) -> RuntimeError:
    # A task error is the controller answering "no"; everything else from Ray means it is not answering.
    if isinstance(exc, RayServeException | ValueError | TypeError | ray.exceptions.RayTaskError):
        return ServeRejected(str(exc).strip().splitlines()[-1][:2000] if str(exc).strip() else repr(exc))
    return ServeUnavailable(f"{type(exc).__name__}: {str(exc)[:500]}")


class RayServeAdapter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cluster_url: str | None = None

    def connect(self) -> None:
        """Join the cluster as a driver and make sure Serve runs with our HTTP options."""
        try:
            if not ray.is_initialized():
                ray.init(address=self.settings.ray_address, log_to_driver=False, configure_logging=False)
            serve.start(http_options={"host": self.settings.serve_host, "port": self.settings.serve_port})
            address = self.settings.ray_address
            # "auto"/"local" say how to find the cluster, not where it is: report what Ray found.
            if address in ("", "auto", "local"):
                address = ray.get_runtime_context().gcs_address
            self._cluster_url = address
        except Exception as exc:  # ray.init raises ConnectionError, RuntimeError and Ray's own errors
            raise ServeUnavailable(f"cannot connect to Ray at {self.settings.ray_address}: {exc}") from exc

    def reconnect(self) -> None:
        try:
            ray.shutdown()
        except Exception:  # noqa: BLE001 - a dead session may fail to shut down; a new one replaces it
            pass
        self.connect()

    def close(self) -> None:
        if ray.is_initialized():
            ray.shutdown()

    @property
    def cluster_url(self) -> str | None:
        return self._cluster_url

    def applications(self, prefix: str) -> dict[str, AppObservation]:
        """Every Serve application whose name starts with `prefix.`, as plain observations."""
        try:
            status = serve.status()
        except Exception as exc:  # ActorDiedError after a Serve restart, RaySystemError, timeouts…
            raise _classify(exc) from exc
        observed: dict[str, AppObservation] = {}
        for name, app in status.applications.items():
            if not name.startswith(prefix + "."):
                continue
            observed[name] = AppObservation(
                status=str(app.status.value),
                message=app.message or "",
                deployments={
                    deployment_name: DeploymentObservation(
                        status=str(deployment.status.value), message=deployment.message or ""
                    )
                    for deployment_name, deployment in app.deployments.items()
                },
            )
        return observed

    def deploy(
        self,
        *,
        app_name: str,
        route_prefix: str,
        deployment_name: str,
        spec: ModelSpec,
        ray_actor_options: dict[str, Any],
    ) -> None:
        """Create or replace the application; returns once Serve accepted it, not when it runs."""
        application = (
            serve.deployment(ModelServer)
            .options(name=deployment_name, num_replicas=1, ray_actor_options=ray_actor_options)
            .bind(spec)
        )
        try:
            serve.run_many(
                [serve.RunTarget(target=application, name=app_name, route_prefix=route_prefix)],
                wait_for_ingress_deployment_creation=False,
                wait_for_applications_running=False,
            )
        except Exception as exc:
            raise _classify(exc) from exc

    def delete(self, app_name: str) -> None:
        """Ask Serve to delete the application; returns without waiting for it to go."""
        try:
            serve.delete(app_name, _blocking=False)
        except Exception as exc:
            raise _classify(exc) from exc
