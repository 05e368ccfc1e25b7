"""Log output: JSON lines naming their logger; our loggers at the configured level, libraries at WARNING."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Run in a fresh interpreter: configure_logging sets process-wide state (structlog, the root logger).
SCRIPT = """
import logging, sys, structlog
from modelreg.shared.logging import configure_logging
configure_logging(sys.argv[1], "json", service="probe")
ours = structlog.get_logger("modelreg.worker")
ours.debug("ours at debug")
ours.info("ours at info", model="ns/m1")
logging.getLogger("aiokafka.consumer").info("library at info")
logging.getLogger("aiokafka.consumer").warning("library at warning")
"""


def log_lines(level: str) -> dict[str, dict]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, level], capture_output=True, text=True, timeout=60, check=True
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {line["event"]: line for line in lines}


def test_at_info_our_loggers_log_info_and_libraries_only_warnings_all_naming_their_logger() -> None:
    lines = log_lines("INFO")
    assert set(lines) == {"ours at info", "library at warning"}
    ours = lines["ours at info"]
    assert (ours["logger"], ours["level"], ours["service"], ours["model"]) == (
        "modelreg.worker",
        "info",
        "probe",
        "ns/m1",
    )
    library = lines["library at warning"]
    assert (library["logger"], library["level"], library["service"]) == (
        "aiokafka.consumer",
        "warning",
        "probe",
    )


def test_debug_shows_everything() -> None:
    assert set(log_lines("DEBUG")) == {
        "ours at debug",
        "ours at info",
        "library at info",
        "library at warning",
    }


@pytest.mark.parametrize("level", ["WARNING", "ERROR"])
def test_a_stricter_level_applies_to_libraries_too(level: str) -> None:
    expected = {"library at warning"} if level == "WARNING" else set()
    assert set(log_lines(level)) == expected
