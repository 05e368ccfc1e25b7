"""What `modelreg` prints: its help, and its output into a pipe the reader closed early (`| head`)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys

import pytest

from modelreg.services.cli import build_parser


def test_models_help_names_each_command_with_its_article() -> None:
    with pytest.raises(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:
        build_parser().parse_args(["models", "--help"])
    text = " ".join(out.getvalue().split())
    assert "publish a deploy command" in text and "publish an undeploy command" in text


def test_output_into_a_closed_pipe_ends_quietly() -> None:
    # `modelreg events schema | head -c 100`: the reader is gone before the output is written (its end of
    # the pipe is closed at once, so every write fails); one line on stderr at most, no traceback.
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-m", "modelreg.services.cli", "events", "schema"],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(read_end)
    os.close(write_end)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert stderr == ""


def test_make_runs_banner_names_every_topic_it_created(capsys) -> None:
    from modelreg.services.devstack.stack import print_banner
    from modelreg.shared.settings import Settings

    settings = Settings(cluster_health_topic="health-reports")
    print_banner(settings, "http://127.0.0.1:8000")
    [topics_line] = [line for line in capsys.readouterr().out.splitlines() if "Topics" in line]
    assert topics_line.split(None, 1)[1].split(", ") == settings.topics
    assert settings.topics[-1] == "health-reports" and len(set(settings.topics)) == 4
