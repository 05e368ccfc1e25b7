"""The bridge drives only a cluster whose Ray it was tested with (its dashboard REST shapes), unless told."""

from __future__ import annotations

import pytest
import ray

from modelreg.services.serve_bridge.ray_version import UntestedRayVersion, check_ray_version
from modelreg.shared.settings import Settings


@pytest.mark.parametrize("version", ["2.60.0", "2.60.3", "2.60.0rc1"])
def test_a_tested_major_minor_passes(version: str) -> None:
    assert check_ray_version(version, allow_untested=False) is None


@pytest.mark.parametrize("version", ["2.61.0", "2.6.0", "3.0.0", "nightly"])
def test_an_untested_version_is_refused_with_the_way_out(version: str) -> None:
    with pytest.raises(UntestedRayVersion, match="MODELREG_BRIDGE_ALLOW_UNTESTED_RAY=true") as refused:
        check_ray_version(version, allow_untested=False)
    assert f"Ray {version} " in str(refused.value) and "/api/serve/applications/" in str(refused.value)


def test_an_untested_version_runs_when_allowed_and_says_why_it_is_risky() -> None:
    problem = check_ray_version("3.0.0", allow_untested=True)
    assert problem is not None and "Ray 3.0.0" in problem


def test_the_ray_in_the_lock_file_is_a_tested_one() -> None:
    # The Ray image and the e2e clusters run this Ray; the bridge checks the cluster's at connect.
    check_ray_version(ray.__version__, allow_untested=False)


def test_the_setting_reads_from_the_environment() -> None:
    settings = Settings.from_env({"MODELREG_BRIDGE_ALLOW_UNTESTED_RAY": "true"})
    assert settings.bridge_allow_untested_ray is True
