"""Liveness and readiness probes (public, outside /v1)."""

from __future__ import annotations

from litestar import Controller, Response, get
from pymongo.errors import PyMongoError

from modelreg.shared.adapters import mongo
from modelreg.shared.settings import Settings


class HealthController(Controller):
    path = "/health"
    tags = ["Health"]

    @get("/live", summary="Liveness probe")
    async def live(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", summary="Readiness probe: MongoDB answers")
    async def ready(self, mongo_client: mongo.MongoClient, settings: Settings) -> Response[dict[str, str]]:
        try:
            await mongo.ping(mongo_client, timeout_s=settings.api_ready_timeout_s)
        except PyMongoError as exc:
            return Response({"status": "unavailable", "mongodb": type(exc).__name__}, status_code=503)
        return Response({"status": "ok", "mongodb": "ok"})
