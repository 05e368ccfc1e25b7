"""What the clusters area (and the models area's placement) needs: the registered clusters."""

from __future__ import annotations

from typing import Protocol

from modelreg.shared.documents import ClusterRecord


class ClusterDirectory(Protocol):
    """The registered Ray clusters (`shared.adapters.mongo.ClusterStore`)."""

    async def all(self) -> list[ClusterRecord]: ...

    async def models_placed(self) -> dict[str, int]:
        """How many models live on (or are asked on) each cluster."""
        ...


class NoClusters:
    """No cluster registered: what a registry without the clusters collection wired in sees."""

    async def all(self) -> list[ClusterRecord]:
        return []

    async def models_placed(self) -> dict[str, int]:
        return {}
