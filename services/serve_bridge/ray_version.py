"""PURE: the Ray versions whose dashboard REST API the bridge was tested with.

The bridge drives Ray Serve only through the dashboard (`ray_dashboard.py`): `PUT`/`GET
/api/serve/applications/` (the declarative `ServeDeploySchema`, and `deployed_app_config` in the answer, which
the bridge sends back for the applications it keeps) and `GET /api/cluster_status` (whose
`loadMetricsReport` layout gives free and total resources; an internal shape). Those shapes may change in any
Ray release, so the bridge refuses a cluster whose Ray major.minor (from `GET /api/ray/version`) it was not
tested with, unless MODELREG_BRIDGE_ALLOW_UNTESTED_RAY is set.
"""

from __future__ import annotations

import re

# Ray (major, minor) releases the dashboard calls were tested with (the one in requirements.lock).
TESTED_RAY_VERSIONS = frozenset({(2, 60)})


class UntestedRayVersion(RuntimeError):
    """The cluster runs a Ray the bridge's dashboard calls were not tested with."""


def ray_version_problem(version: str) -> str | None:
    """None when `version`'s major.minor was tested, else what is wrong (for the log or the refusal)."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is not None and (int(match[1]), int(match[2])) in TESTED_RAY_VERSIONS:
        return None
    tested = ", ".join(f"{major}.{minor}" for major, minor in sorted(TESTED_RAY_VERSIONS))
    return (
        f"Ray {version} is not a version the bridge was tested with ({tested}); it relies on the dashboard's "
        "Serve REST API (PUT/GET /api/serve/applications/, deployed_app_config) and on the layout of "
        "/api/cluster_status, which may have changed"
    )


def check_ray_version(version: str, allow_untested: bool) -> str | None:
    """Raise UntestedRayVersion unless `version` was tested; with `allow_untested`, return the problem."""
    problem = ray_version_problem(version)
    if problem is not None and not allow_untested:
        raise UntestedRayVersion(
            f"{problem}. Run a tested Ray on the cluster, or set MODELREG_BRIDGE_ALLOW_UNTESTED_RAY=true to "
            "run anyway."
        )
    return problem
