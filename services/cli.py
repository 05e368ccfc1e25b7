"""`modelreg`: one command line for every process and a few operator tools."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from modelreg.shared.contracts import EventType, ModelFormat, now_microseconds
from modelreg.shared.logging import configure_logging
from modelreg.shared.settings import Settings, SettingsError

EVENT_TYPE_PREFIX = "deployment."


def cmd_api(settings: Settings, _: argparse.Namespace) -> int:
    from modelreg.services.api.app import create_app
    from modelreg.services.api.server import serve

    serve(create_app(settings), settings)
    return 0


def cmd_worker(settings: Settings, _: argparse.Namespace) -> int:
    from modelreg.services.worker.main import run_worker

    asyncio.run(run_worker(settings))
    return 0


def cmd_bridge(settings: Settings, args: argparse.Namespace) -> int:
    from modelreg.services.serve_bridge.main import run_bridge
    from modelreg.services.serve_bridge.ray_version import UntestedRayVersion

    if args.cluster:
        try:
            settings = Settings.from_env({**settings.as_env(), "MODELREG_BRIDGE_CLUSTER": args.cluster})
        except SettingsError as exc:
            print(f"modelreg: --cluster: {exc}", file=sys.stderr)
            return 2
    try:
        asyncio.run(run_bridge(settings))
    except (UntestedRayVersion, ValueError) as exc:
        print(f"modelreg: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_webhooks(settings: Settings, _: argparse.Namespace) -> int:
    from modelreg.services.webhooks.main import run_dispatcher

    asyncio.run(run_dispatcher(settings))
    return 0


def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    from modelreg.services.devstack.stack import run_dev_stack

    return run_dev_stack(settings, with_ray=not args.no_ray, demo=not args.no_demo)


def cmd_register(settings: Settings, args: argparse.Namespace) -> int:
    from modelreg.services.admin import InvalidRegistration, register_model

    try:
        model = asyncio.run(
            register_model(
                settings,
                namespace_id=args.namespace,
                model_id=args.model_id,
                name=args.name,
                version=args.version,
                model_format=args.format,
                archive_url=args.archive_url,
                model_hash=args.hash,
            )
        )
    except InvalidRegistration as exc:
        print(f"modelreg models register: {exc}", file=sys.stderr)
        return 2
    print(model.model_id)
    return 0


def cmd_publish(settings: Settings, args: argparse.Namespace) -> int:
    from modelreg.services.admin import publish_event
    from modelreg.shared.contracts import DeploymentEvent, InvalidMessage

    try:
        event = DeploymentEvent(
            event_id=uuid.uuid4(),
            event_type=EventType(EVENT_TYPE_PREFIX + args.type),
            namespace_id=args.namespace,
            model_id=args.model_id,
            sequence=args.sequence if args.sequence is not None else now_microseconds(),
            occurred_at=datetime.now(UTC),
            endpoint=args.endpoint,
            base_image=args.base_image,
            ray_cluster_url=args.ray_cluster_url,
            ray_deployment_name=args.ray_deployment_name,
            message=args.message,
        )
    except ValueError as exc:  # the contract's cross-field rule (a ready event needs endpoint and image)
        return _invalid(InvalidMessage("invalid_event", str(exc)))
    if failed := _published(lambda: publish_event(settings, event)):
        return failed
    print(event.event_id)
    return 0


def cmd_command(settings: Settings, args: argparse.Namespace) -> int:
    from pymongo.errors import PyMongoError

    from modelreg.services.admin import connect_and_request_deployment, request_deployment
    from modelreg.shared.contracts import CommandType, DeploymentCommand

    command = DeploymentCommand(
        command_id=uuid.uuid4(),
        command_type=CommandType(args.action),
        namespace_id=args.namespace,
        model_id=args.model_id,
        requested_at=datetime.now(UTC),
    )
    if getattr(args, "wait", False):  # follows the model over its own MongoDB connection
        return _deploy_and_wait(
            settings, args, str(command.command_id), lambda: request_deployment(settings, command)
        )
    try:
        failed = _published(lambda: connect_and_request_deployment(settings, command))
    except PyMongoError as exc:  # the audit entry is written first: without it nothing is sent
        print(f"modelreg: not published, its audit entry could not be stored: {exc!r}", file=sys.stderr)
        return 1
    if failed:
        return failed
    print(command.command_id)
    return 0


def _deploy_and_wait(
    settings: Settings,
    args: argparse.Namespace,
    command_id: str,
    publish: Callable[[], Coroutine[Any, Any, object]],
) -> int:
    from modelreg.services.follow import EXIT_INTERRUPTED, follow_model
    from modelreg.shared.contracts import ModelKey
    from modelreg.shared.signals import stop_on_signals

    outcome: list[int] = []

    async def publish_and_follow() -> None:
        # SIGINT and SIGTERM end the wait through `stop`: the command is sent (or refused) whole, never
        # cancelled halfway, and the wait stops at its next step.
        stop = asyncio.Event()
        stop_on_signals(stop)
        key = ModelKey(args.namespace, args.model_id)
        outcome.append(
            await follow_model(
                settings, key, sys.stdout, publish=publish, wait=True, timeout_s=args.timeout, stop=stop
            )
        )

    if failed := _published(publish_and_follow):
        return failed
    if outcome[0] == EXIT_INTERRUPTED:
        print(
            f"modelreg: stopped waiting; command {command_id} was sent and the {args.action} goes on "
            f"(follow it: modelreg models watch --namespace {args.namespace} --model-id {args.model_id})",
            file=sys.stderr,
        )
    return outcome[0]


def cmd_watch(settings: Settings, args: argparse.Namespace) -> int:
    from modelreg.services.follow import follow_model
    from modelreg.shared.contracts import ModelKey
    from modelreg.shared.signals import stop_on_signals

    async def watch() -> int:
        # SIGINT and SIGTERM end the watch through `stop` (exit 130), not by cancelling a database read.
        stop = asyncio.Event()
        stop_on_signals(stop)
        return await follow_model(settings, ModelKey(args.namespace, args.model_id), sys.stdout, stop=stop)

    return asyncio.run(watch())


def _published(publish: Callable[[], Coroutine[Any, Any, object]]) -> int:
    """Run a publish: 0 once sent, 2 for a message the contract refuses, 1 when Kafka refuses it."""
    from aiokafka.errors import KafkaError

    from modelreg.shared.contracts import InvalidMessage

    try:
        asyncio.run(publish())
    except InvalidMessage as exc:
        return _invalid(exc)
    except KafkaError as exc:
        print(f"modelreg: not published, Kafka refused it: {exc!r}", file=sys.stderr)
        return 1
    return 0


def _invalid(exc: Exception) -> int:
    print(f"modelreg: not published, the message is invalid: {exc}", file=sys.stderr)
    return 2


def cmd_resync(settings: Settings, args: argparse.Namespace) -> int:
    from modelreg.services.admin import resync_model
    from modelreg.shared.contracts import ModelKey

    key = ModelKey(args.namespace, args.model_id)
    command = asyncio.run(resync_model(settings, key))
    if command is None:
        print(f"modelreg models resync: no model {key}", file=sys.stderr)
        return 1
    print(f"Reset the sequence guard of {key}; the bridge will re-announce what Ray Serve runs for it.")
    print(command.command_id)
    return 0


def cmd_schema(_: Settings, __: argparse.Namespace) -> int:
    import msgspec

    from modelreg.shared.contracts import DeploymentCommand, DeploymentEvent

    print(
        msgspec.json.format(
            msgspec.json.encode(msgspec.json.schema_components([DeploymentEvent, DeploymentCommand])[1])
        ).decode()
    )
    return 0


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    from modelreg.services.keys.service import InvalidKeyRequest, with_key_service

    try:
        key, record = asyncio.run(
            with_key_service(settings, lambda keys: keys.create(args.namespace, args.admin))
        )
    except InvalidKeyRequest as exc:
        print(f"modelreg keys create: {exc}", file=sys.stderr)
        return 2
    scope = "every namespace (admin)" if record.admin else ", ".join(record.namespaces)
    if record.admin and record.namespaces:
        scope += f"; listed: {', '.join(record.namespaces)}"
    print(f"Created API key {record.prefix} for {scope}.")
    print("It is shown only this once; send it as 'Authorization: Bearer <key>'.")
    print(key)
    return 0


def cmd_keys_list(settings: Settings, _: argparse.Namespace) -> int:
    from modelreg.services.keys.service import with_key_service

    records = asyncio.run(with_key_service(settings, lambda keys: keys.list()))
    print(f"{'PREFIX':<14} {'CREATED':<20} {'STATE':<8} {'ADMIN':<6} NAMESPACES")
    for record in records:
        state = "revoked" if record.revoked else "active"
        created = record.created_at.strftime("%Y-%m-%d %H:%M:%S")
        admin = "yes" if record.admin else "no"
        print(f"{record.prefix:<14} {created:<20} {state:<8} {admin:<6} {', '.join(record.namespaces)}")
    return 0


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from modelreg.services.keys.service import with_key_service

    if not asyncio.run(with_key_service(settings, lambda keys: keys.revoke(args.prefix))):
        print(f"modelreg keys revoke: no key with prefix {args.prefix!r}", file=sys.stderr)
        return 1
    print(f"Revoked API key {args.prefix}.")
    return 0


def cmd_clusters_add(settings: Settings, args: argparse.Namespace) -> int:
    from modelreg.services.cluster_admin import InvalidCluster, add_cluster, parse_labels, validated

    try:
        registration = validated(args.name, args.ray_address, args.serve_url, parse_labels(args.label))
        asyncio.run(add_cluster(settings, registration))
    except InvalidCluster as exc:
        print(f"modelreg clusters add: {exc}", file=sys.stderr)
        return 2
    print(
        f"Registered cluster {registration.name}; "
        f"run its bridge with `modelreg bridge --cluster {registration.name}`."
    )
    return 0


def cmd_clusters_list(settings: Settings, _: argparse.Namespace) -> int:
    from modelreg.services.api.clusters.service import cluster_view
    from modelreg.services.cluster_admin import list_clusters

    rows = asyncio.run(list_clusters(settings))
    now, unreachable_after = datetime.now(UTC), settings.cluster_unreachable_after_s
    print(
        f"{'NAME':<20} {'HEALTHY':<8} {'MODELS':<7} {'LAST SEEN':<20} {'RAY ADDRESS':<30} "
        f"{'SERVE URL':<30} LABELS"
    )
    for record, models in rows:
        healthy = "yes" if cluster_view(record, models, unreachable_after, now).healthy else "no"
        seen = record.last_seen_at.strftime("%Y-%m-%d %H:%M:%S") if record.last_seen_at else "never"
        labels = ",".join(f"{k}={v}" for k, v in sorted(record.labels.items()))
        print(
            f"{record.name:<20} {healthy:<8} {models:<7} {seen:<20} {record.ray_address:<30} "
            f"{record.serve_url:<30} {labels}"
        )
    return 0


def cmd_clusters_remove(settings: Settings, args: argparse.Namespace) -> int:
    from modelreg.services.cluster_admin import InvalidCluster, remove_cluster

    try:
        removed = asyncio.run(remove_cluster(settings, args.name))
    except InvalidCluster as exc:
        print(f"modelreg clusters remove: {exc}", file=sys.stderr)
        return 1
    if not removed:
        print(f"modelreg clusters remove: no cluster {args.name!r}", file=sys.stderr)
        return 1
    print(f"Removed cluster {args.name}.")
    return 0


def cmd_topics(settings: Settings, _: argparse.Namespace) -> int:
    from modelreg.shared.adapters.kafka import ensure_topics

    asyncio.run(ensure_topics(settings, settings.topics))
    print("\n".join(settings.topics))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelreg", description="Model registry with deployment tracking")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="serve the HTTP API").set_defaults(handler=cmd_api)
    sub.add_parser("worker", help="apply deployment events from Kafka to MongoDB").set_defaults(
        handler=cmd_worker
    )
    bridge = sub.add_parser("bridge", help="run deploy/undeploy commands on Ray Serve and publish its events")
    bridge.add_argument(
        "--cluster", help="the named Ray cluster this bridge serves (default: MODELREG_BRIDGE_CLUSTER)"
    )
    bridge.set_defaults(handler=cmd_bridge)
    sub.add_parser(
        "webhooks", help="deliver the registry's changes to webhooks (signed, retried)"
    ).set_defaults(handler=cmd_webhooks)
    dev = sub.add_parser("dev", help="the whole stack on one machine, with embedded servers")
    dev.add_argument("--no-ray", action="store_true", help="do not start Ray Serve and the bridge")
    dev.add_argument("--no-demo", action="store_true", help="do not register and deploy the demo model")
    dev.set_defaults(handler=cmd_dev)

    topics = sub.add_parser("topics", help="Kafka topics").add_subparsers(dest="action", required=True)
    topics.add_parser("create", help="create the events, DLQ and commands topics if missing").set_defaults(
        handler=cmd_topics
    )

    models = sub.add_parser("models", help="operator tools for models").add_subparsers(
        dest="action", required=True
    )
    register = models.add_parser("register", help="insert a model document (archive already stored)")
    register.add_argument("--namespace", required=True)
    register.add_argument("--model-id", required=True)
    register.add_argument("--name", required=True)
    register.add_argument("--version", default="1")
    register.add_argument("--format", required=True, choices=[str(f) for f in ModelFormat])
    register.add_argument("--archive-url", required=True)
    register.add_argument("--hash", required=True, help="sha256 of the archive")
    register.set_defaults(handler=cmd_register)
    for action in ("deploy", "undeploy"):
        article = "an" if action == "undeploy" else "a"
        command = models.add_parser(
            action, help=f"publish {article} {action} command for the Ray Serve bridge"
        )
        command.add_argument("--namespace", required=True)
        command.add_argument("--model-id", required=True)
        command.set_defaults(handler=cmd_command)
    deploy = models.choices["deploy"]
    deploy.add_argument(
        "--wait",
        action="store_true",
        help="print the transitions until deployed (exit 0) or failed (exit 1; 3: no outcome in time)",
    )
    deploy.add_argument("--timeout", type=float, default=600.0, help="seconds --wait waits (default 600)")
    watch = models.add_parser("watch", help="print a model's transitions as they happen (Ctrl-C stops)")
    watch.add_argument("--namespace", required=True)
    watch.add_argument("--model-id", required=True)
    watch.set_defaults(handler=cmd_watch)
    resync = models.add_parser(
        "resync",
        help="unfreeze a model stuck behind a bad event: reset its sequence guard and have the bridge "
        "re-announce its real Ray Serve state",
    )
    resync.add_argument("--namespace", required=True)
    resync.add_argument("--model-id", required=True)
    resync.set_defaults(handler=cmd_resync)

    events = sub.add_parser("events", help="deployment events").add_subparsers(dest="action", required=True)
    publish = events.add_parser("publish", help="publish one deployment event")
    publish.add_argument("--namespace", required=True)
    publish.add_argument("--model-id", required=True)
    publish.add_argument(
        "--type", required=True, choices=[t.removeprefix(EVENT_TYPE_PREFIX) for t in EventType]
    )
    publish.add_argument("--sequence", type=int, help="default: microseconds since the epoch")
    publish.add_argument("--endpoint")
    publish.add_argument("--base-image")
    publish.add_argument("--ray-cluster-url")
    publish.add_argument("--ray-deployment-name")
    publish.add_argument("--message")
    publish.set_defaults(handler=cmd_publish)
    events.add_parser("schema", help="print the JSON Schema of events and commands").set_defaults(
        handler=cmd_schema
    )

    clusters = sub.add_parser("clusters", help="named Ray clusters (docs/clusters.md)").add_subparsers(
        dest="action", required=True
    )
    add = clusters.add_parser("add", help="register a Ray cluster")
    add.add_argument("name")
    add.add_argument("--ray-address", required=True, help="how its bridge reaches Ray")
    add.add_argument("--serve-url", required=True, help="base URL of its Ray Serve HTTP proxy")
    add.add_argument("--label", action="append", default=[], help="key=value (repeatable)")
    add.set_defaults(handler=cmd_clusters_add)
    clusters.add_parser("list", help="registered clusters, their health and models").set_defaults(
        handler=cmd_clusters_list
    )
    remove = clusters.add_parser(
        "remove", help="unregister a cluster (refused while models are placed there)"
    )
    remove.add_argument("name")
    remove.set_defaults(handler=cmd_clusters_remove)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key; prints it alone on the last line, once")
    create.add_argument(
        "--namespace", action="append", default=[], help="a namespace the key may use (repeatable)"
    )
    create.add_argument("--admin", action="store_true", help="the key may use every namespace")
    create.set_defaults(handler=cmd_keys_create)
    keys.add_parser("list", help="list keys (prefixes only)").set_defaults(handler=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by its prefix")
    revoke.add_argument("prefix")
    revoke.set_defaults(handler=cmd_keys_revoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"modelreg: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format, service=args.command)
    handler: Callable[[Settings, argparse.Namespace], int] = args.handler  # set_defaults on every command
    try:
        return handler(settings, args)
    except BrokenPipeError:
        # The reader went away (`modelreg … | head`): end quietly, and keep the interpreter's final flush of
        # stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
