"""The Ray adapter: Ray Serve driven through the cluster's dashboard REST API, the way KubeRay does it.

The bridge is an HTTP client of the dashboard (`MODELREG_RAY_ADDRESS`, e.g. `http://ray-head:8265`): no Ray
driver, no shared temp dir, no `ray` import in the bridge. Every change is `GET /api/serve/applications/`,
then `PUT` of the whole declarative config with the one application changed (`serve_config.py`). Calls are
blocking and run one at a time on the bridge's call thread (`ray_calls.RayCalls`), so two changes never
interleave their read-modify-write. Where the cluster runs with `RAY_AUTH_MODE=token`, every request carries
`Authorization: Bearer MODELREG_RAY_AUTH_TOKEN` (Ray's dashboard checks that header).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import structlog

from modelreg.services.serve_bridge.model_server import ModelSpec
from modelreg.services.serve_bridge.ports import ServeRejected, ServeUnavailable
from modelreg.services.serve_bridge.ray_version import check_ray_version
from modelreg.services.serve_bridge.serve_config import (
    DashboardAnswerError,
    application_config,
    cluster_resources,
    desired_config,
    observations,
    serve_running,
)
from modelreg.services.serve_bridge.transitions import AppObservation
from modelreg.shared.contracts import ClusterResources
from modelreg.shared.settings import Settings

log = structlog.get_logger("modelreg.bridge")
APPLICATIONS = "/api/serve/applications/"
# Longest wait for one HTTP exchange with the dashboard. A call makes up to two exchanges (GET, then PUT),
# so each gets at most a third of MODELREG_BRIDGE_RAY_TIMEOUT_S: a dashboard that hangs is "unavailable"
# (reconnect, health reports say so) well before the call counts as hung (which stops the bridge).
REQUEST_TIMEOUT_S = 30.0


def dashboard_url(settings: Settings) -> str:
    url = settings.ray_address.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(
            f"MODELREG_RAY_ADDRESS must be the Ray dashboard's URL (http://host:8265), not {url!r}; "
            "the bridge drives Serve through the dashboard's REST API (docs/clusters.md)"
        )
    return url


class RayDashboardAdapter:
    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.base_url = dashboard_url(settings)
        self._transport = transport
        self._client: httpx.Client | None = None
        self._timeout_s = min(REQUEST_TIMEOUT_S, settings.bridge_ray_timeout_s / 3)
        self.ray_version: str | None = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            headers = {"Accept": "application/json"}
            if self.settings.ray_auth_token:
                headers["Authorization"] = f"Bearer {self.settings.ray_auth_token}"
            self._client = httpx.Client(
                base_url=self.base_url,
                headers=headers,
                timeout=self._timeout_s,
                transport=self._transport,
            )
        return self._client

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            response = self._http().request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ServeUnavailable(f"the Ray dashboard at {self.base_url} does not answer: {exc!r}") from exc
        if response.status_code in (401, 403):
            raise ServeUnavailable(
                f"the Ray dashboard at {self.base_url} refused the bridge ({response.status_code}): "
                "set MODELREG_RAY_AUTH_TOKEN to the cluster's token (RAY_AUTH_MODE=token)"
            )
        if response.status_code >= 500:
            raise ServeUnavailable(
                f"the Ray dashboard answered {response.status_code}: {response.text[:500]}"
            )
        return response

    def _json(self, method: str, path: str) -> dict[str, Any]:
        response = self._request(method, path)
        if response.status_code != 200:
            raise ServeUnavailable(f"{method} {path} answered {response.status_code}: {response.text[:500]}")
        try:
            answer = response.json()
        except ValueError as exc:
            raise ServeUnavailable(f"{method} {path} did not answer JSON: {response.text[:200]!r}") from exc
        if not isinstance(answer, dict):
            raise ServeUnavailable(f"{method} {path} did not answer a JSON object")
        return answer

    def connect(self) -> None:
        """Check the dashboard answers, with the token if one is needed, and runs a tested Ray."""
        version = self._json("GET", "/api/ray/version")
        self.ray_version = str(version.get("ray_version", "unknown"))
        problem = check_ray_version(self.ray_version, self.settings.bridge_allow_untested_ray)
        if problem:
            log.warning("the cluster runs an untested Ray version", problem=problem)
        self._details()  # the Serve API answers (and the token is accepted by it)

    def reconnect(self) -> None:
        self.close()
        self.connect()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def cluster_url(self) -> str | None:
        return self.base_url

    def _details(self) -> dict[str, Any]:
        return self._json("GET", APPLICATIONS)

    def serve_up(self) -> bool:
        return serve_running(self._details())

    def start_serve(self) -> None:
        """A PUT of the applications that run (none on a fresh cluster) starts Serve's controller and proxy
        with the bridge's HTTP options; Serve already running is left alone."""
        if not self.serve_up():
            self._put()
            log.info("started Ray Serve on the cluster", serve_port=self.settings.serve_port)

    def applications(self, prefix: str) -> dict[str, AppObservation]:
        try:
            return observations(self._details(), prefix)
        except DashboardAnswerError as exc:
            raise ServeUnavailable(str(exc)) from exc

    def resources(self) -> ClusterResources:
        try:
            return cluster_resources(self._json("GET", "/api/cluster_status"))
        except DashboardAnswerError as exc:
            raise ServeUnavailable(str(exc)) from exc

    def _put(self, **change: Any) -> None:
        try:
            body = desired_config(
                self._details(),
                http_host=self.settings.serve_host,
                http_port=self.settings.serve_port,
                **change,
            )
        except DashboardAnswerError as exc:
            raise ServeUnavailable(str(exc)) from exc
        response = self._request("PUT", APPLICATIONS, body)
        if response.status_code == 400:  # Serve's schema or the controller refused the config
            lines = response.text.strip().splitlines()
            raise ServeRejected(lines[-1][:2000] if lines else "the Serve config was refused")
        if response.status_code != 200:
            raise ServeUnavailable(
                f"PUT {APPLICATIONS} answered {response.status_code}: {response.text[:500]}"
            )

    def deploy(
        self,
        *,
        app_name: str,
        route_prefix: str,
        deployment_name: str,
        spec: ModelSpec,
        ray_actor_options: dict[str, Any],
    ) -> None:
        """Add or replace the model's application; returns once Serve lists it (not when it runs)."""
        self._put(
            put=application_config(
                app_name=app_name,
                route_prefix=route_prefix,
                deployment_name=deployment_name,
                spec=spec,
                ray_actor_options=ray_actor_options,
                revision=uuid.uuid4().hex,
            )
        )
        self._wait_listed(app_name)

    def _wait_listed(self, app_name: str) -> None:
        # Serve's controller applies a PUT config asynchronously: until it lists the application, a poll would
        # see it missing and report the model deleted.
        deadline = time.monotonic() + self._timeout_s
        while app_name not in self._details().get("applications", {}):
            if time.monotonic() > deadline:
                log.warning("Serve does not list the application yet", app=app_name)
                return
            time.sleep(0.2)

    def delete(self, app_name: str) -> None:
        """Leave the application out of the config; Serve deletes it (the watcher sees it go)."""
        self._put(remove=app_name)
