"""The command loop: deploy, undeploy and resync commands from Kafka carried out on Ray Serve.

Commands come batch by batch through the shared consumer loop; offsets are committed once the batch has
been carried out. A command states what the model should be, so of several for one model in a batch only
the last matters (one model's commands share a partition, so their order is the order they were sent).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from pymongo.errors import PyMongoError

from modelreg.services.serve_bridge import metrics
from modelreg.services.serve_bridge.loaders import ModelLoadError, model_files
from modelreg.services.serve_bridge.materialize import ArchiveProblem, prepare_model_files
from modelreg.services.serve_bridge.model_cache import ModelCache
from modelreg.services.serve_bridge.model_server import ModelSpec
from modelreg.services.serve_bridge.naming import (
    NamingError,
    app_name,
    deployment_name,
    parse_deployment_name,
    route_prefix,
)
from modelreg.services.serve_bridge.ports import ModelReader, ServeRejected, ServeUnavailable
from modelreg.services.serve_bridge.ray_calls import RayHung
from modelreg.services.serve_bridge.replica_archives import replica_archive_url
from modelreg.services.serve_bridge.reporting import Reporter
from modelreg.services.serve_bridge.session import ServeSession
from modelreg.services.serve_bridge.transitions import Reported, later_command_wins
from modelreg.services.serve_bridge.watcher import NO_APPLICATION
from modelreg.shared.adapters.kafka import Batch, ConsumerLoop
from modelreg.shared.adapters.storage import ArchiveStorage
from modelreg.shared.cluster_routing import is_for_cluster
from modelreg.shared.contracts import (
    CommandType,
    DeploymentCommand,
    EventType,
    InvalidMessage,
    ModelFormat,
    ModelKey,
    decode_command,
)
from modelreg.shared.documents import ResourceRequirementsFields
from modelreg.shared.retry import RetryPolicy, Stopping
from modelreg.shared.settings import Settings

log = structlog.get_logger("modelreg.bridge")

# Statuses in which an existing application already does what a deploy command asks.
ALREADY_DEPLOYED = frozenset({"NOT_STARTED", "DEPLOYING", "RUNNING", "UNHEALTHY"})
COMMANDS_PER_BATCH = 50


def ray_actor_options(resources: ResourceRequirementsFields) -> dict[str, Any]:
    """The model's resource_requirements as Ray actor options."""
    options: dict[str, Any] = {"num_cpus": resources.num_cpus, "num_gpus": resources.num_gpus}
    if resources.memory > 0:
        options["memory"] = resources.memory
    return options


def latest_commands(
    commands: list[DeploymentCommand],
) -> tuple[list[DeploymentCommand], list[DeploymentCommand]]:
    """The command to carry out per model, in batch order, and the ones they supersede."""
    latest: dict[ModelKey, DeploymentCommand] = {}
    superseded_ones: list[DeploymentCommand] = []
    for command in commands:
        superseded = latest.pop(command.key, None)
        if superseded is not None and not later_command_wins(superseded.command_type, command.command_type):
            command, superseded = superseded, command
        if superseded is not None:
            superseded_ones.append(superseded)
        latest[command.key] = command
    return list(latest.values()), superseded_ones


class CommandHandler:
    def __init__(
        self,
        settings: Settings,
        session: ServeSession,
        reporter: Reporter,
        models: ModelReader,
        storage: ArchiveStorage,
        cache: ModelCache,
        retry: RetryPolicy,
    ) -> None:
        self.settings = settings
        self.session = session
        self.reporter = reporter
        self.models = models
        self.storage = storage
        self.cache = cache
        self.retry = retry
        self.prefix = settings.serve_app_prefix
        self.cluster = settings.bridge_cluster

    async def run(self, consumer: AIOKafkaConsumer) -> None:
        """Commands batch by batch until stopped."""
        loop = ConsumerLoop(consumer, self.retry, timeout_ms=1000, max_records=COMMANDS_PER_BATCH)
        await loop.run(self.handle_batch)

    async def handle_batch(self, batch: Batch) -> None:
        decoded = [
            command
            for records in batch.values()
            for record in records
            if (command := self._decode(record)) is not None and self._ours(command)
        ]
        latest, superseded = latest_commands(decoded)
        for command in superseded:
            metrics.COMMANDS.labels(command_type=str(command.command_type), outcome="superseded").inc()
        for command in latest:
            # Every line logged while carrying it out (fetch, Ray, publish, retries) names the command.
            with structlog.contextvars.bound_contextvars(
                command_id=str(command.command_id), model=str(command.key)
            ):
                await self.carry_out(command)

    def _ours(self, command: DeploymentCommand) -> bool:
        """Whether this bridge's cluster carries the command out; other clusters' bridges take the rest."""
        if is_for_cluster(command, self.cluster):
            return True
        metrics.COMMANDS.labels(command_type=str(command.command_type), outcome="other_cluster").inc()
        log.debug("command for another cluster skipped", model=str(command.key), cluster=command.cluster)
        return False

    def _decode(self, record: ConsumerRecord) -> DeploymentCommand | None:
        try:
            return decode_command(record.key, record.value)
        except InvalidMessage as exc:
            metrics.COMMANDS.labels(command_type="unknown", outcome=exc.reason).inc()
            log.error(
                "command refused",
                reason=exc.reason,
                error=exc.detail[:300],
                partition=record.partition,
                offset=record.offset,
            )
            return None

    async def carry_out(self, command: DeploymentCommand) -> None:
        """Handle one command, through Ray reconnects; an unexpected error fails the model, not the bridge."""
        while True:
            generation = self.session.generation
            try:
                outcome = await self.handle(command)
                break
            except ServeUnavailable as exc:
                log.warning("Ray Serve is not answering; command will be retried", error=str(exc))
                await self.session.recover(generation)
            except (Stopping, RayHung):
                raise
            except Exception as exc:  # noqa: BLE001 - a command that breaks the bridge must not crash-loop it
                log.exception("command failed unexpectedly", model=str(command.key))
                await self.reporter.publish(
                    command.key,
                    EventType.FAILED,
                    model_format=None,
                    message=f"the bridge could not carry out the {command.command_type} command: "
                    f"{type(exc).__name__}: {exc}",
                )
                self.reporter.reported.pop(command.key, None)  # the watcher re-reports what Serve runs
                outcome = "error"
                break
        metrics.COMMANDS.labels(command_type=str(command.command_type), outcome=outcome).inc()
        log.info(
            "command handled",
            command_id=str(command.command_id),
            command_type=str(command.command_type),
            model=str(command.key),
            outcome=outcome,
        )
        deploys_done = self.cache.deploys_done
        with contextlib.suppress(ServeUnavailable, ServeRejected):  # the watcher trims later
            await self.cache.evict_unused(await self.session.owned_applications(), deploys_done)

    async def handle(self, command: DeploymentCommand) -> str:
        """Carry out one command; returns the outcome for logs and metrics."""
        if command.command_type is CommandType.DEPLOY:
            return await self.deploy(command.key)
        if command.command_type is CommandType.RESYNC:
            return await self.resync(command.key)
        return await self.undeploy(command.key)

    async def deploy(self, key: ModelKey) -> str:
        details = await self.retry.run("read_model", lambda: self.models.get_details(key), (PyMongoError,))
        if details is None:
            log.warning("deploy command for a model that is not in the registry", model=str(key))
            return "unknown_model"
        model_format = details.model_format
        try:
            name = app_name(self.prefix, key)
            deployment = deployment_name(model_format, details.model_hash)
        except NamingError as exc:
            await self.reporter.publish(key, EventType.FAILED, model_format=model_format, message=str(exc))
            return "failed"
        current = (await self.session.owned_applications()).get(key)
        if current is not None and current[1].status in ALREADY_DEPLOYED:
            if current[1].deployment_name != deployment:
                log.warning(
                    "the running application serves another archive; undeploy and deploy to replace it",
                    model=str(key),
                    running=current[1].deployment_name,
                    registered=deployment,
                )
            await self.reporter.announce(key, name, current[1])
            return "already_deployed"

        reported = self.reporter.reported
        model_hash = details.model_hash.strip().lower()
        self.reporter.busy.add(key)
        try:
            with self.cache.deploying(model_hash):
                await self.reporter.publish(
                    key,
                    EventType.STARTED,
                    model_format=model_format,
                    message="fetching and checking the model archive",
                )
                previous = current[1].deployment_name if current else None
                reported[key] = Reported(EventType.STARTED, current is not None, previous)
                try:
                    files = await prepare_model_files(
                        self.storage, details.model_archive_url, details.model_hash, self.cache.root
                    )
                    await asyncio.to_thread(model_files, ModelFormat(model_format), files)
                except (ArchiveProblem, ModelLoadError) as exc:
                    await self.reporter.publish(
                        key, EventType.FAILED, model_format=model_format, message=str(exc)
                    )
                    reported[key] = Reported(EventType.FAILED, current is not None, previous)
                    return "failed"
                spec = ModelSpec(
                    namespace_id=key.namespace_id,
                    model_id=key.model_id,
                    model_format=str(model_format),
                    model_hash=model_hash,
                    archive_url=replica_archive_url(self.settings, key, details.model_archive_url),
                    cache_dir=self.settings.ray_replica_work_dir or str(self.cache.root),
                    task_type=details.task_type,
                    s3_endpoint_url=self.settings.s3_endpoint_url,
                    s3_bucket=self.settings.s3_bucket,
                    archive_root=str(self.storage.root),
                    archive_allowed_roots=self.settings.archive_allowed_roots,
                    max_archive_members=self.settings.max_archive_members,
                    max_unpacked_bytes=self.settings.max_unpacked_bytes,
                    max_compression_ratio=self.settings.max_compression_ratio,
                    archive_registry_url=self.settings.bridge_archive_registry_url,
                    archive_registry_key=self.settings.bridge_archive_registry_key,
                )
                try:
                    await self.session.deploy(
                        app_name=name,
                        route_prefix=route_prefix(key),
                        deployment_name=deployment,
                        spec=spec,
                        ray_actor_options=ray_actor_options(details.resource_requirements),
                    )
                except ServeRejected as exc:
                    message = f"Ray Serve refused the application: {exc}"
                    await self.reporter.publish(
                        key, EventType.FAILED, model_format=model_format, message=message
                    )
                    reported[key] = Reported(EventType.FAILED, current is not None, previous)
                    return "failed"
                reported[key] = Reported(EventType.STARTED, True, deployment)
                return "deploying"
        finally:
            self.reporter.busy.discard(key)

    async def undeploy(self, key: ModelKey) -> str:
        current = (await self.session.owned_applications()).get(key)
        if current is None:
            await self.reporter.deleted(key)
            return "already_deleted"
        name, app = current
        self.reporter.busy.add(key)
        try:
            parsed = parse_deployment_name(app.deployment_name)
            await self.reporter.publish(
                key, EventType.DELETING, model_format=parsed[0] if parsed else None, app=name
            )
            await self.session.delete(name)
            self.reporter.reported[key] = Reported(EventType.DELETING, True, app.deployment_name)
            return "deleting"
        finally:
            self.reporter.busy.discard(key)

    async def resync(self, key: ModelKey) -> str:
        """Publish what Serve really runs for the model, whatever was reported before (after a resync)."""
        current = (await self.session.owned_applications()).get(key)
        if current is None:
            await self.reporter.deleted(key, NO_APPLICATION)
            return "resynced_absent"
        await self.reporter.announce(key, *current)
        return "resynced"
