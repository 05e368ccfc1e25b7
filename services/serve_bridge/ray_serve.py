"""The Ray adapter: the only module of the bridge that imports ray. Blocking calls, one thread at a time
(`ray_calls.RayCalls` runs them).

Ray Serve's client is cached per driver session; after the Serve controller or the cluster restarts the
cached handle keeps failing with ActorDiedError, so `reconnect()` starts a new driver session.

Two calls are outside Ray's stable API: `serve.run_many` (a DeveloperAPI: deploys without waiting for the
application to run) and `serve.delete(..., _blocking=False)` (a private argument: deletes without waiting).
They may change in any Ray release, so the adapter refuses to start on a Ray major.minor they were not
tested with, unless MODELREG_BRIDGE_ALLOW_UNTESTED_RAY is set.
"""

from __future__ import annotations

import re
from typing import Any

import ray
import ray.exceptions
import structlog
from ray import serve
from ray.serve.exceptions import RayServeException

from services.serve_bridge.model_server import ModelServer, ModelSpec
from services.serve_bridge.ports import ServeRejected, ServeUnavailable
from services.serve_bridge.transitions import AppObservation, DeploymentObservation
from shared.settings import Settings

__all__ = ["RayServeAdapter", "ServeRejected", "ServeUnavailable", "UntestedRayVersion", "check_ray_version"]

# Ray (major, minor) releases the non-public calls below were tested with (the one in requirements.lock).
TESTED_RAY_VERSIONS = frozenset({(2, 60)})
log = structlog.get_logger("modelreg.bridge")


class UntestedRayVersion(RuntimeError):
    """The installed Ray is not one the bridge's non-public Serve calls were tested with."""


def check_ray_version(version: str, allow_untested: bool) -> None:
    """Raise UntestedRayVersion unless `version`'s major.minor was tested (or untested ones are allowed)."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is not None and (int(match[1]), int(match[2])) in TESTED_RAY_VERSIONS:
        return
    tested = ", ".join(f"{major}.{minor}" for major, minor in sorted(TESTED_RAY_VERSIONS))
    problem = (
        f"Ray {version} is not a version the bridge was tested with ({tested}); it calls serve.run_many "
        "(a DeveloperAPI) and serve.delete(_blocking=False) (a private argument), which may have changed"
    )
    if not allow_untested:
        raise UntestedRayVersion(
            f"{problem}. Install a tested Ray, or set MODELREG_BRIDGE_ALLOW_UNTESTED_RAY=true to run anyway."
        )
    log.warning("running on an untested Ray version", ray_version=version, tested=tested)


def _classify(exc: BaseException) -> RuntimeError:
    # A task error is the controller answering "no"; everything else from Ray means it is not answering.
    if isinstance(exc, RayServeException | ValueError | TypeError | ray.exceptions.RayTaskError):
        return ServeRejected(str(exc).strip().splitlines()[-1][:2000] if str(exc).strip() else repr(exc))
    return ServeUnavailable(f"{type(exc).__name__}: {str(exc)[:500]}")


class RayServeAdapter:
    def __init__(self, settings: Settings) -> None:
        check_ray_version(ray.__version__, settings.bridge_allow_untested_ray)
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
        # Ray annotates serve.deployment as returning the decorator even when it is given the class.
        application = (
            serve.deployment(ModelServer)  # type: ignore[attr-defined]
            .options(name=deployment_name, num_replicas=1, ray_actor_options=ray_actor_options)
            .bind(spec)
        )
        try:
            _run_without_waiting(application, app_name, route_prefix)
        except Exception as exc:
            raise _classify(exc) from exc

    def delete(self, app_name: str) -> None:
        """Ask Serve to delete the application; returns without waiting for it to go."""
        try:
            _delete_without_waiting(app_name)
        except Exception as exc:
            raise _classify(exc) from exc


# The two non-public calls, pinned by TESTED_RAY_VERSIONS. serve.run and serve.delete would block the
# bridge's single Ray thread (and with it the watcher) until the application runs or is gone.
def _run_without_waiting(application: Any, app_name: str, route_prefix: str) -> None:
    serve.run_many(
        [serve.RunTarget(target=application, name=app_name, route_prefix=route_prefix)],
        wait_for_ingress_deployment_creation=False,
        wait_for_applications_running=False,
    )


def _delete_without_waiting(app_name: str) -> None:
    serve.delete(app_name, _blocking=False)
