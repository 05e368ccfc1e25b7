"""Ctrl-C on `make run` sends SIGINT to the API process too: it stops like the worker, quietly, exit 0."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import msgspec

from modelreg.services.devstack.embedded import free_port
from modelreg.services.testing.processes import ServiceProcess


async def test_sigint_stops_the_api_with_exit_0_and_no_traceback(settings, db, tmp_path: Path) -> None:
    port = free_port()
    api = ServiceProcess("api", msgspec.structs.replace(settings, api_port=port), tmp_path / "api.log")
    api.start()
    try:
        await api.wait_listening(port)
        assert api.process is not None
        api.process.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(api.process.wait, 30)
    finally:
        await asyncio.to_thread(api.stop)
    log = (tmp_path / "api.log").read_text()
    assert code == 0, log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
