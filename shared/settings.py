"""One typed settings object, read from MODELREG_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

ENV_PREFIX = "MODELREG_"

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class SettingsError(ValueError):
    """A MODELREG_* variable is missing or malformed."""


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    # MongoDB
    mongodb_url: str = "mongodb://127.0.0.1:27017"
    mongodb_database: str = "modelreg"
    # Kafka
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_idempotent: bool = True
    events_topic: str = "model-deployment-events"
    dlq_topic: str = "model-deployment-events.dlq"
    commands_topic: str = "model-deployment-commands"
    # Bridges' periodic cluster health reports (ClusterHealthReport, keyed by cluster name).
    cluster_health_topic: str = "model-cluster-health"
    consumer_group: str = "modelreg-worker"
    topic_partitions: PositiveInt = 3
    # Worker tuning
    worker_batch_max_records: PositiveInt = 500
    worker_batch_timeout_ms: PositiveInt = 500
    worker_session_timeout_ms: PositiveInt = 10_000
    worker_heartbeat_interval_ms: PositiveInt = 3_000
    worker_retry_max_backoff_s: float = 10.0
    worker_metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    # Where the worker's and the bridge's metrics listen; unset: the API's host.
    metrics_host: str | None = None
    # Longest value prefix copied to the DLQ (the rest is cut, header dlq.truncated); the cap keeps a
    # dead letter under Kafka's default 1 MiB max_request_size, so it can always be written.
    dlq_max_value_bytes: Annotated[int, msgspec.Meta(ge=0, le=512 * 1024)] = 64 * 1024
    history_limit: PositiveInt = 500
    # Events dated (occurred_at, or sequence read as microseconds since the epoch) later than now + this
    # are dead-lettered as from_the_future: applied, they would freeze the model.
    max_clock_skew_s: Annotated[float, msgspec.Meta(ge=0)] = 300.0
    # Comma-separated URL prefixes event endpoints must lie under; empty: any http(s) URL.
    event_endpoint_prefixes: str = ""
    # API
    api_host: str = "127.0.0.1"
    api_port: Port = 8000
    # HMAC secret for stored API key hashes; changing it invalidates every key.
    api_key_pepper: str = ""
    api_command_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 15.0
    # Longest wait of /health/ready for MongoDB's answer: a probe must answer before its own timeout.
    api_ready_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    # Longest wait a deploy with `Prefer: wait=N` gets for its outcome (N is capped to this; 0: never waits).
    api_max_deploy_wait_s: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 60
    # Connection limits of the HTTP server (put a reverse proxy with its own limits in front in production).
    api_header_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    api_body_grace_s: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    api_body_min_rate_bytes_s: Annotated[float, msgspec.Meta(gt=0)] = 65536.0
    api_max_concurrency: PositiveInt = 1000
    api_keep_alive_timeout_s: PositiveInt = 5
    # API caches (docs/performance.md). Key records: how long a revocation by another process may go
    # unnoticed while no change feed is followed (0: no cache). GET details: their TTL without the feed
    # (the staleness bound for other processes' writes) and with it (a safety net), and their bounds.
    api_auth_cache_ttl_s: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    api_auth_cache_max_entries: PositiveInt = 10_000
    api_details_cache_ttl_s: Annotated[float, msgspec.Meta(ge=0)] = 0.02
    api_details_cache_feed_ttl_s: Annotated[float, msgspec.Meta(ge=0)] = 300.0
    api_details_cache_max_entries: PositiveInt = 100_000
    api_details_cache_max_bytes: PositiveInt = 256 * 1024**2
    api_cache_follow_changes: bool = True
    # Longest time the broker may hold the worker's fetch before answering: tansu answers a fetch only once
    # it expires, even with records waiting, so this is the floor of event → applied (docs/performance.md).
    worker_fetch_max_wait_ms: PositiveInt = 20
    # Base URL clients reach the API at (signed upload URLs); unset: the scheme and host of the request.
    api_public_url: str | None = None
    # HMAC secret of the API's signed upload URLs (filesystem storage); empty: a random one per process.
    upload_signing_key: str = ""
    # How often the API removes expired presigned uploads (their stored bytes, then their records).
    upload_cleanup_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    # Ray clusters: the name a bridge serves (commands without a cluster go to "local", see
    # shared/cluster_routing.py), how often it reports health, and how long a silent cluster stays healthy.
    bridge_cluster: Annotated[
        str, msgspec.Meta(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", max_length=63)
    ] = "local"
    bridge_health_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    cluster_unreachable_after_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    # How often the worker checks for clusters silent longer than cluster_unreachable_after_s.
    cluster_check_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    # Inference route (POST .../predict): the one pooled HTTP client of each API process towards the models'
    # endpoints; a request whose endpoint does not answer (headers) within predict_timeout_s answers 504.
    # A deleted model's tombstone lasts tombstone_retention_s (its late deleting/deleted events are then
    # acknowledged, not dead-lettered).
    predict_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    predict_connect_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    predict_max_connections: PositiveInt = 100
    predict_max_keepalive_connections: PositiveInt = 20
    tombstone_retention_s: Annotated[float, msgspec.Meta(gt=0)] = 7 * 24 * 3600.0
    # Remote Ray clusters (docs/clusters.md): the dashboard's token where RAY_AUTH_MODE=token; where replicas
    # unpack models (empty: the bridge's work dir, one machine); the registry that serves archives to
    # replicas (unset: replicas fetch the model's own URL, s3:// or file://) and the read key they use.
    ray_auth_token: str = ""
    ray_replica_work_dir: str = ""
    bridge_archive_registry_url: str | None = None
    bridge_archive_registry_key: str = ""
    # Ray Serve bridge
    # The Ray cluster's dashboard URL: the bridge drives Serve through its REST API (docs/clusters.md).
    ray_address: str = "http://127.0.0.1:8265"
    serve_host: str = "127.0.0.1"
    serve_port: Port = 8001
    bridge_poll_interval_s: float = 1.0
    bridge_metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    bridge_retry_max_backoff_s: float = 10.0
    bridge_work_dir: str = ".modelreg/bridge"
    # Unpacked models no application uses are kept (most recently used first) while the cache is under this.
    bridge_cache_max_bytes: Annotated[int, msgspec.Meta(ge=0)] = 10 * 1024**3
    bridge_consumer_group: str = "modelreg-bridge"
    # Longest time the broker may hold the bridge's command fetch (tansu holds it that long even with a
    # command waiting, so it delays every deploy by up to this; aiokafka's default is 500).
    bridge_fetch_max_wait_ms: PositiveInt = 100
    # Serve applications are named "{serve_app_prefix}.{namespace_id}.{model_id}"; the bridge owns those.
    serve_app_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = "modelreg"
    # Base of the endpoints published in events; default http://{serve_host}:{serve_port}.
    serve_public_url: str | None = None
    # Longest wait for one call to Ray before the bridge reconnects.
    bridge_ray_timeout_s: float = 120.0
    # Run the bridge on a Ray major.minor its non-public Serve calls were not tested with (logs a warning).
    bridge_allow_untested_ray: bool = False
    base_image_onnx: str = "modelreg/serve-onnx:latest"
    base_image_safetensors: str = "modelreg/serve-safetensors:latest"
    base_image_pytorch: str = "modelreg/serve-pytorch:latest"
    base_image_huggingface: str = "modelreg/serve-huggingface:latest"
    # Archive storage
    archive_root: str = ".modelreg/archives"
    max_archive_bytes: PositiveInt = 2 * 1024**3
    # Caps while reading an archive (API upload check, bridge and replica unpacking): members, and the sum of
    # the members' sizes (the decompressed stream is capped at that plus room for headers).
    max_archive_members: PositiveInt = 10_000
    max_unpacked_bytes: PositiveInt = 8 * 1024**3
    # ... and at most this many times the archive's own size (above 64 MiB unpacked): gzip bombs.
    max_compression_ratio: PositiveInt = 100
    # Directories (comma-separated) besides archive_root from which file:// archives and plain paths may be
    # fetched; s3:// archives only from s3_bucket.
    archive_allowed_roots: str = ""
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    # Shared models: the organization id shown on them (Mixpeek's org-level models carry one).
    organization_id: str = "default"
    # Change feed, live watch (SSE) and webhooks (docs/watch.md, docs/webhooks.md)
    watch_buffer_size: PositiveInt = 256
    watch_heartbeat_s: Annotated[float, msgspec.Meta(gt=0)] = 15.0
    webhook_retry_period_s: Annotated[float, msgspec.Meta(gt=0)] = 24 * 3600.0
    webhook_initial_backoff_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    webhook_max_backoff_s: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    webhook_disable_after_s: Annotated[float, msgspec.Meta(gt=0)] = 3 * 24 * 3600.0
    webhook_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    webhook_poll_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 0.5
    webhook_concurrency: PositiveInt = 16
    # Comma-separated hosts (host or host:port) webhooks may reach over http and on private addresses.
    webhook_allowed_hosts: str = ""
    webhook_allow_private: bool = False
    # Logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        raw = {
            name: environ[ENV_PREFIX + name.upper()]
            for name in cls.__struct_fields__
            if ENV_PREFIX + name.upper() in environ
        }
        try:
            # strict=False lets "8000" become 8000 and "false" become False.
            return msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(f"invalid {ENV_PREFIX}* setting: {exc}") from exc

    @property
    def topics(self) -> list[str]:
        """Every Kafka topic of the registry (what `modelreg topics create` and `make run` create)."""
        return [self.events_topic, self.dlq_topic, self.commands_topic, self.cluster_health_topic]

    @property
    def metrics_bind_host(self) -> str:
        return self.api_host if self.metrics_host is None else self.metrics_host

    def as_env(self) -> dict[str, str]:
        """The settings as MODELREG_* variables, for starting child processes."""
        env: dict[str, str] = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value is None:
                continue
            env[ENV_PREFIX + name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
        return env
