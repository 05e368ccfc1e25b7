"""Turning SIGTERM and SIGINT into a stop event that long-running loops check."""

from __future__ import annotations

import asyncio
import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set `stop`, so a long-running loop can finish its work in hand and exit.

    They are also unblocked: a process inherits its parent's blocked signals (some launchers block SIGINT
    in their children), and a blocked stop signal would stay pending for ever.
    """
    loop = asyncio.get_running_loop()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
