"""The installed package has one import root, `modelreg`, and lives beside a consumer's own `services`."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
UV = Path(sys.executable).parent / "uv"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([str(UV), "build", "--wheel", "-q", "-o", str(out), str(ROOT)], check=True, timeout=600)
    (built,) = out.glob("modelreg-*.whl")
    return built


def test_the_wheel_holds_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        top_level = {name.split("/")[0] for name in archive.namelist()}
        names = set(archive.namelist())
    assert {entry for entry in top_level if not entry.endswith(".dist-info")} == {"modelreg"}
    # The symlinked folders are packed as real files, console assets included.
    assert "modelreg/services/cli.py" in names
    assert "modelreg/shared/contracts.py" in names
    assert any(name.startswith("modelreg/services/api/console/static/") for name in names)


def test_an_installed_wheel_lives_beside_a_consumers_services_package(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([str(UV), "venv", "-q", "-p", sys.executable, str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(UV), "pip", "install", "-q", "--python", str(python), "--no-deps", str(wheel)],
        check=True,
        timeout=300,
    )
    # The wheel's dependencies come from this project's environment: its site-packages on the path (a .pth
    # line), without running that environment's own .pth files (its editable install of the repository).
    site_packages = Path(sysconfig.get_paths()["purelib"])
    venv_site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (venv_site / "project_dependencies.pth").write_text(f"{site_packages}\n")
    installed = sorted(p.name for p in venv_site.iterdir() if not p.name.endswith((".pth", ".dist-info")))
    assert "services" not in installed and "shared" not in installed

    consumer = tmp_path / "consumer"
    (consumer / "services").mkdir(parents=True)
    (consumer / "services" / "__init__.py").write_text("OWNER = 'the consumer'\n")
    check = (
        "import services, modelreg.services.cli, modelreg.shared.contracts as c\n"
        "assert services.OWNER == 'the consumer', services.__file__\n"
        f"cli_file = modelreg.services.cli.__file__\n"
        f"assert cli_file.startswith({str(venv_site)!r}), cli_file\n"
        "print(c.DeploymentEvent.__name__)\n"
    )
    # A consumer's environment: no checkout of this repository on PYTHONPATH (as a worktree's test run has).
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    result = subprocess.run(
        [str(python), "-c", check], cwd=consumer, capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "DeploymentEvent"
    help_text = subprocess.run(
        [str(venv / "bin" / "modelreg"), "--help"],
        cwd=consumer,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert help_text.returncode == 0, help_text.stderr
    assert "clusters" in help_text.stdout
