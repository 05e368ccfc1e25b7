"""The bridge's logic: run commands on Ray Serve, watch its applications, publish every transition.

Two loops share one event loop: the command loop (deploy/undeploy, from Kafka) and the watcher (polls
`serve.status()`). What the bridge last published per model lives in `reported`; the watcher leaves a
model alone while its command is in hand (`busy`). Nothing here is stored: after a restart or a Ray
reconnect, `reconcile()` publishes the current state of every application the bridge owns, and `deleted`
for models the registry still shows on Serve although Serve has no application for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from pymongo.errors import PyMongoError

from services.serve_bridge import metrics
from services.serve_bridge.cache_rules import in_use, models_to_evict
from services.serve_bridge.events import EventPublisher
from services.serve_bridge.loaders import ModelLoadError, model_files
from services.serve_bridge.materialize import (
    ArchiveProblem,
    cached_models,
    detach_cached_model,
    empty_trash,
    prepare_model_files,
)
from services.serve_bridge.model_server import ModelSpec
from services.serve_bridge.naming import (
    NamingError,
    app_name,
    deployment_name,
    parse_app_name,
    parse_deployment_name,
    route_prefix,
)
from services.serve_bridge.ray_serve import RayServeAdapter, ServeRejected, ServeUnavailable
from services.serve_bridge.transitions import (
    AppObservation,
    Reported,
    event_for_status,
    later_command_wins,
    models_missing_from_serve,
    status_message,
    transition,
)
from shared.adapters.mongo import ModelStore
from shared.adapters.storage import ArchiveStorage
from shared.contracts import (
    CommandType,
    DeploymentCommand,
    EventType,
    InvalidMessage,
    ModelFormat,
    ModelKey,
    decode_command,
)
from shared.documents import ResourceRequirementsFields
from shared.retry import Stopping, retry_with_backoff
from shared.settings import Settings

T = TypeVar("T")
log = structlog.get_logger("modelreg.bridge")

# Statuses in which an existing application already does what a deploy command asks.
ALREADY_DEPLOYED = frozenset({"NOT_STARTED", "DEPLOYING", "RUNNING", "UNHEALTHY"})


class RayHung(RuntimeError):
    """A call to Ray did not return in time; the process should be restarted."""


def ray_actor_options(resources: ResourceRequirementsFields) -> dict[str, Any]:
    """The model's resource_requirements as Ray actor options."""
    options: dict[str, Any] = {"num_cpus": resources.num_cpus, "num_gpus": resources.num_gpus}
    if resources.memory > 0:
        options["memory"] = resources.memory
    return options


class RayCalls:
    """Runs the adapter's blocking calls one at a time on a dedicated thread, with a time limit.

    The thread is a daemon: a call that never returns must not keep the process from exiting.
    """

    def __init__(self, adapter: RayServeAdapter, timeout_s: float) -> None:
        self.adapter = adapter
        self.timeout_s = timeout_s
        self.generation = 0  # bumped on every reconnect
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="ray-calls", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            loop, future, function = item
            try:
                outcome, failed = function(), False
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                outcome, failed = exc, True
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, future, outcome, failed)

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._calls.put((loop, future, functools.partial(function, *args, **kwargs)))
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            raise RayHung(f"{function.__name__} did not return within {self.timeout_s}s") from None

    def shutdown(self) -> None:
        self._calls.put(None)


def _settle(future: asyncio.Future, outcome: Any, failed: bool) -> None:
    if future.done():  # the caller gave up waiting
        return
    if failed:
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class BridgeService:
    def __init__(
        self,
        settings: Settings,
        ray: RayCalls,
        publisher: EventPublisher,
        store: ModelStore,
        storage: ArchiveStorage,
        stop: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.ray = ray
        self.adapter = ray.adapter
        self.publisher = publisher
        self.store = store
        self.storage = storage
        self.stop = stop
        self.prefix = settings.serve_app_prefix
        self.cache_root = Path(settings.bridge_work_dir).resolve()
        self.reported: dict[ModelKey, Reported] = {}
        self.busy: set[ModelKey] = set()
        self.materializing: set[str] = set()  # sha256 of the archives of the deploys in hand
        self.deploys_done = 0  # counts finished deploys: a Serve snapshot taken before one may miss its app
        self._recover_lock = asyncio.Lock()

    # --- infrastructure --------------------------------------------------------------------------

    async def _retry(self, operation: str, call: Callable[[], Awaitable[T]], retry_on: tuple) -> T:
        return await retry_with_backoff(
            call,
            operation=operation,
            stop=self.stop,
            retry_on=retry_on,
            max_backoff_s=self.settings.bridge_retry_max_backoff_s,
        )

    async def connect(self) -> None:
        await self._retry("connect_ray", lambda: self.ray.call(self.adapter.connect), (ServeUnavailable,))
        self.publisher.cluster_url = self.adapter.cluster_url
        log.info(
            "connected to Ray Serve", ray=self.adapter.cluster_url, serve=self.publisher.settings.serve_port
        )

    async def start(self) -> None:
        """Connect to Ray and publish the current state of everything the bridge owns."""
        await self.connect()
        generation = self.ray.generation
        try:
            await self.reconcile()
        except ServeUnavailable as exc:
            log.warning("Ray Serve failed while reconciling", error=str(exc))
            await self.recover(generation)

    async def recover(self, seen_generation: int) -> None:
        """Start a new Ray session and reconcile, unless another loop already did since `seen_generation`."""
        async with self._recover_lock:
            if self.ray.generation != seen_generation:
                return
            while True:
                await self._retry(
                    "reconnect_ray", lambda: self.ray.call(self.adapter.reconnect), (ServeUnavailable,)
                )
                self.publisher.cluster_url = self.adapter.cluster_url
                self.ray.generation += 1
                metrics.RAY_RECONNECTS.inc()
                log.warning("reconnected to Ray", ray=self.adapter.cluster_url)
                try:
                    await self.reconcile()
                    return
                except ServeUnavailable as exc:
                    log.warning("Ray failed again while reconciling", error=str(exc))

    async def _publish(
        self,
        key: ModelKey,
        event_type: EventType,
        *,
        model_format: ModelFormat | str | None,
        message: str | None = None,
        app: str | None = None,
    ) -> None:
        if app is None:
            try:
                app = app_name(self.prefix, key)
            except NamingError:
                app = None
        event = self.publisher.build(
            key, event_type, app_name=app, model_format=model_format, message=message
        )
        await self._retry("publish_event", lambda: self.publisher.publish(event), (KafkaError, OSError))

    async def _applications(self) -> dict[ModelKey, tuple[str, AppObservation]]:
        apps = await self.ray.call(self.adapter.applications, self.prefix)
        owned: dict[ModelKey, tuple[str, AppObservation]] = {}
        counts: dict[str, int] = {}
        for name, app in apps.items():
            key = parse_app_name(self.prefix, name)
            if key is None or parse_deployment_name(app.deployment_name) is None:
                continue
            owned[key] = (name, app)
            counts[app.status] = counts.get(app.status, 0) + 1
        for status in ("DEPLOYING", "RUNNING", "UNHEALTHY", "DEPLOY_FAILED", "DELETING"):
            metrics.APPLICATIONS.labels(status=status).set(counts.get(status, 0))
        return owned

    async def _announce(self, key: ModelKey, name: str, app: AppObservation) -> None:
        """Publish what an application currently is, and remember it."""
        parsed = parse_deployment_name(app.deployment_name)
        event_type = event_for_status(app.status)
        await self._publish(
            key,
            event_type,
            model_format=parsed[0] if parsed else None,
            message=status_message(app),
            app=name,
        )
        self.reported[key] = Reported(event_type, True, app.deployment_name)

    # --- the unpacked-model cache --------------------------------------------------------------------

    async def evict_unused_models(
        self, owned: dict[ModelKey, tuple[str, AppObservation]], deploys_done: int
    ) -> list[str]:
        """Free cached models no owned application runs and no deploy in hand needs, beyond the bound.

        `owned` is what Serve ran when `deploys_done` deploys were finished; if one finished since, its
        application may be missing from it, so nothing is evicted this time.
        """
        if deploys_done != self.deploys_done:
            return []
        running = {
            parsed[1] for _, app in owned.values() if (parsed := parse_deployment_name(app.deployment_name))
        }
        bound = self.settings.bridge_cache_max_bytes
        evicted = []
        try:
            cached = await asyncio.to_thread(cached_models, self.cache_root)
            for model in models_to_evict(cached, running | self.materializing, bound):
                # Checked again: a deploy may have started while the cache was listed.
                if not in_use(model, self.materializing) and detach_cached_model(self.cache_root, model):
                    evicted.append(model)
            await asyncio.to_thread(empty_trash, self.cache_root)
        except OSError as exc:
            log.warning("the model cache could not be trimmed", error=str(exc))
        if evicted:
            log.info("evicted unused models from the cache", model_hashes=evicted)
        return evicted

    # --- watching ----------------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Publish the current state of every owned application; `deleted` where the registry is behind."""
        deploys_done = self.deploys_done
        owned = await self._applications()
        for key in [k for k in self.reported if k not in self.busy]:
            del self.reported[key]
        for key, (name, app) in owned.items():
            if key not in self.busy:
                await self._announce(key, name, app)
        live = await self._retry("read_models", self.store.keys_observed_on_serve, (PyMongoError,))
        missing = models_missing_from_serve(live, owned, self.busy)
        for key in missing:
            await self._publish(
                key,
                EventType.DELETED,
                model_format=None,
                message="Ray Serve has no application for this model",
            )
            self.reported[key] = Reported(EventType.DELETED, False)
        log.info("reconciled with Ray Serve", applications=len(owned), missing=len(missing))
        await self.evict_unused_models(owned, deploys_done)

    async def poll_once(self) -> None:
        deploys_done = self.deploys_done
        owned = await self._applications()
        candidates = set(owned) | {key for key, last in self.reported.items() if last.app_present}
        for key in candidates - self.busy:
            name, app = owned.get(key, (None, None))
            last = self.reported.get(key)
            event_type = transition(last, app)
            if event_type is None:
                if app is not None and last is not None and not last.app_present:
                    self.reported[key] = Reported(last.event_type, True, app.deployment_name)
                continue
            if app is None:
                await self._publish(key, EventType.DELETED, model_format=None)
                self.reported[key] = Reported(EventType.DELETED, False)
            else:
                await self._announce(key, name, app)
        await self.evict_unused_models(owned, deploys_done)

    async def run_watcher(self) -> None:
        while not self.stop.is_set():
            generation = self.ray.generation
            try:
                await self.poll_once()
            except ServeUnavailable as exc:
                log.warning("Ray Serve is not answering", error=str(exc))
                await self.recover(generation)
                continue
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=self.settings.bridge_poll_interval_s)
            except TimeoutError:
                pass

    # --- commands ----------------------------------------------------------------------------------

    async def handle(self, command: DeploymentCommand) -> str:
        """Carry out one command; returns the outcome for logs and metrics."""
        if command.command_type is CommandType.DEPLOY:
            return await self._deploy(command.key)
        if command.command_type is CommandType.RESYNC:
            return await self._resync(command.key)
        return await self._undeploy(command.key)

    async def _deploy(self, key: ModelKey) -> str:
        details = await self._retry("read_model", lambda: self.store.get_details(key), (PyMongoError,))
        if details is None:
            log.warning("deploy command for a model that is not in the registry", model=str(key))
            return "unknown_model"
        model_format = details.model_format
        try:
            name = app_name(self.prefix, key)
            deployment = deployment_name(model_format, details.model_hash)
        except NamingError as exc:
            await self._publish(key, EventType.FAILED, model_format=model_format, message=str(exc))
            return "failed"
        current = (await self._applications()).get(key)
        if current is not None and current[1].status in ALREADY_DEPLOYED:
            if current[1].deployment_name != deployment:
                log.warning(
                    "the running application serves another archive; undeploy and deploy to replace it",
                    model=str(key),
                    running=current[1].deployment_name,
                    registered=deployment,
                )
            await self._announce(key, name, current[1])
            return "already_deployed"

        self.busy.add(key)
        model_hash = details.model_hash.strip().lower()
        self.materializing.add(model_hash)
        try:
            await self._publish(
                key,
                EventType.STARTED,
                model_format=model_format,
                message="fetching and checking the model archive",
            )
            previous = current[1].deployment_name if current else None
            self.reported[key] = Reported(EventType.STARTED, current is not None, previous)
            try:
                files = await prepare_model_files(
                    self.storage, details.model_archive_url, details.model_hash, self.cache_root
                )
                await asyncio.to_thread(model_files, ModelFormat(model_format), files)
            except (ArchiveProblem, ModelLoadError) as exc:
                await self._publish(key, EventType.FAILED, model_format=model_format, message=str(exc))
                self.reported[key] = Reported(EventType.FAILED, current is not None, previous)
                return "failed"
            spec = ModelSpec(
                namespace_id=key.namespace_id,
                model_id=key.model_id,
                model_format=str(model_format),
                model_hash=model_hash,
                archive_url=details.model_archive_url,
                cache_dir=str(self.cache_root),
                task_type=details.task_type,
                s3_endpoint_url=self.settings.s3_endpoint_url,
                s3_bucket=self.settings.s3_bucket,
                archive_root=str(self.storage.root),
                archive_allowed_roots=self.settings.archive_allowed_roots,
                max_archive_members=self.settings.max_archive_members,
                max_unpacked_bytes=self.settings.max_unpacked_bytes,
            )
            try:
                await self.ray.call(
                    self.adapter.deploy,
                    app_name=name,
                    route_prefix=route_prefix(key),
                    deployment_name=deployment,
                    spec=spec,
                    ray_actor_options=ray_actor_options(details.resource_requirements),
                )
            except ServeRejected as exc:
                message = f"Ray Serve refused the application: {exc}"
                await self._publish(key, EventType.FAILED, model_format=model_format, message=message)
                self.reported[key] = Reported(EventType.FAILED, current is not None, previous)
                return "failed"
            self.reported[key] = Reported(EventType.STARTED, True, deployment)
            return "deploying"
        finally:
            self.busy.discard(key)
            self.materializing.discard(model_hash)
            self.deploys_done += 1

    async def _undeploy(self, key: ModelKey) -> str:
        current = (await self._applications()).get(key)
        if current is None:
            await self._publish(key, EventType.DELETED, model_format=None)
            self.reported[key] = Reported(EventType.DELETED, False)
            return "already_deleted"
        name, app = current
        self.busy.add(key)
        try:
            parsed = parse_deployment_name(app.deployment_name)
            await self._publish(key, EventType.DELETING, model_format=parsed[0] if parsed else None, app=name)
            await self.ray.call(self.adapter.delete, name)
            self.reported[key] = Reported(EventType.DELETING, True, app.deployment_name)
            return "deleting"
        finally:
            self.busy.discard(key)

    async def _resync(self, key: ModelKey) -> str:
        """Publish what Serve really runs for the model, whatever was reported before (after a resync)."""
        current = (await self._applications()).get(key)
        if current is None:
            await self._publish(
                key,
                EventType.DELETED,
                model_format=None,
                message="Ray Serve has no application for this model",
            )
            self.reported[key] = Reported(EventType.DELETED, False)
            return "resynced_absent"
        await self._announce(key, *current)
        return "resynced"

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
            generation = self.ray.generation
            try:
                outcome = await self.handle(command)
                break
            except ServeUnavailable as exc:
                log.warning("Ray Serve is not answering; command will be retried", error=str(exc))
                await self.recover(generation)
            except (Stopping, RayHung):
                raise
            except Exception as exc:  # noqa: BLE001 - a command that breaks the bridge must not crash-loop it
                log.exception("command failed unexpectedly", model=str(command.key))
                await self._publish(
                    command.key,
                    EventType.FAILED,
                    model_format=None,
                    message=f"the bridge could not carry out the {command.command_type} command: "
                    f"{type(exc).__name__}: {exc}",
                )
                self.reported.pop(command.key, None)  # the watcher re-reports what Serve really runs
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
        deploys_done = self.deploys_done
        with contextlib.suppress(ServeUnavailable, ServeRejected):  # the watcher trims later
            await self.evict_unused_models(await self._applications(), deploys_done)

    async def run_commands(self, consumer: AIOKafkaConsumer) -> None:
        """Commands batch by batch; offsets are committed once the batch has been carried out.

        A command states what the model should be, so of several for one model in a batch only the last
        matters (one model's commands share a partition, so their order is the order they were sent).
        """
        while not self.stop.is_set():
            batch = await consumer.getmany(timeout_ms=1000, max_records=50)
            if not batch:
                continue
            latest: dict[ModelKey, DeploymentCommand] = {}
            for records in batch.values():
                for record in records:
                    command = self._decode(record)
                    if command is None:
                        continue
                    superseded = latest.pop(command.key, None)
                    if superseded is not None and not later_command_wins(
                        superseded.command_type, command.command_type
                    ):
                        command, superseded = superseded, command
                    if superseded is not None:
                        metrics.COMMANDS.labels(
                            command_type=str(superseded.command_type), outcome="superseded"
                        ).inc()
                    latest[command.key] = command
            for command in latest.values():
                # Every line logged while carrying it out (fetch, Ray, publish, retries) names the command.
                with structlog.contextvars.bound_contextvars(
                    command_id=str(command.command_id), model=str(command.key)
                ):
                    await self.carry_out(command)
            offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
            await self._retry(
                "commit", functools.partial(self._commit, consumer, offsets), (KafkaError, OSError)
            )

    @staticmethod
    async def _commit(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # Rebalanced: the new owner of the partitions repeats the commands, which are idempotent.
            log.warning("commit refused after a rebalance; the commands will be repeated", error=str(exc))
