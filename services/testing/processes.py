"""Services run as real processes (`python -m <the modelreg CLI module> ...`), so tests can SIGKILL them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec

from modelreg.services import cli
from modelreg.shared.settings import Settings


class ServiceProcess:
    """One `modelreg <command>` process, its JSON log lines appended to `log_path` across restarts."""

    def __init__(self, command: str, settings: Settings, log_path: Path) -> None:
        self.command = command
        self.settings = msgspec.structs.replace(settings, log_format="json")
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> ServiceProcess:
        assert not self.alive, "already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", cli.__name__, self.command],
                env={**os.environ, **self.settings.as_env()},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no cleanup, no commit, like a crash or an OOM kill."""
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self, timeout_s: float = 60) -> int | None:
        if self.process is None:
            return None
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def log_lines(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                try:
                    lines.append(json.loads(raw))
                except json.JSONDecodeError:
                    pass  # a line cut short by SIGKILL
        return lines

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def events_logged(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.log_lines() if line.get("event") == name]

    async def wait_listening(self, port: int, attempts: int = 300) -> None:
        """Until the process accepts connections on `port` (0.2 s apart); fails with its log if it dies."""
        for _ in range(attempts):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            except OSError:
                assert self.alive, self.log_tail()
                await asyncio.sleep(0.2)
        raise AssertionError(f"{self.command} is not listening on port {port}\n{self.log_tail()}")
