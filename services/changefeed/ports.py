"""What the hub needs from the database: change streams that can resume after a token."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from modelreg.shared.changes import RegistryChange


class ChangeCursor(Protocol):
    async def next(self) -> RegistryChange | None:
        """The next committed change, or None when there is none right now."""
        ...

    @property
    def position(self) -> str | None:
        """A token after everything read so far."""
        ...


class ChangeFeed(Protocol):
    def open(self, after: str | None = None) -> AbstractAsyncContextManager[ChangeCursor]:
        """A stream of the changes committed after `after` (None: from now on); raises
        ResumeTokenRefused (shared/adapters/mongo/change_stream.py) if it cannot resume there."""
        ...
