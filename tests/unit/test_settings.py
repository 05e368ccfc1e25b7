from __future__ import annotations

import subprocess
import sys

import pytest

from modelreg.shared.settings import Settings, SettingsError


def test_defaults_and_environment_overrides() -> None:
    assert Settings.from_env({}).api_port == 8000
    settings = Settings.from_env(
        {
            "MODELREG_API_PORT": "9001",
            "MODELREG_KAFKA_IDEMPOTENT": "false",
            "MODELREG_EVENTS_TOPIC": "ev",
            "OTHER": "x",
        }
    )
    assert (settings.api_port, settings.kafka_idempotent, settings.events_topic) == (9001, False, "ev")


def test_as_env_round_trips() -> None:
    settings = Settings.from_env({"MODELREG_API_PORT": "9001", "MODELREG_KAFKA_IDEMPOTENT": "false"})
    assert Settings.from_env(settings.as_env()) == settings


def test_metrics_listen_on_the_api_host_unless_a_metrics_host_is_set() -> None:
    assert Settings.from_env({"MODELREG_API_HOST": "0.0.0.0"}).metrics_bind_host == "0.0.0.0"
    settings = Settings.from_env({"MODELREG_API_HOST": "0.0.0.0", "MODELREG_METRICS_HOST": "10.0.0.5"})
    assert settings.metrics_bind_host == "10.0.0.5"


def test_the_bridge_has_its_own_retry_backoff() -> None:
    settings = Settings.from_env({"MODELREG_BRIDGE_RETRY_MAX_BACKOFF_S": "3"})
    assert (settings.bridge_retry_max_backoff_s, settings.worker_retry_max_backoff_s) == (3.0, 10.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [("MODELREG_API_PORT", "eighty"), ("MODELREG_API_PORT", "70000"), ("MODELREG_LOG_FORMAT", "xml")],
)
def test_malformed_values_are_refused_naming_the_setting(name, value) -> None:
    with pytest.raises(SettingsError, match=name.removeprefix("MODELREG_").lower()):
        Settings.from_env({name: value})


def test_cli_reports_a_bad_setting_and_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modelreg.services.cli", "api"],
        env={"MODELREG_API_PORT": "eighty", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "api_port" in result.stderr
