"""Prometheus metrics of the worker (served on MODELREG_WORKER_METRICS_PORT when set)."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter("modelreg_worker_events_consumed_total", "Records read from the events topic")
EVENTS_APPLIED = Counter("modelreg_worker_events_applied_total", "Events that changed a model")
EVENTS_STALE = Counter(
    "modelreg_worker_events_ignored_stale_total", "Duplicate or older events the sequence guard ignored"
)
EVENTS_DEAD_LETTERED = Counter(
    "modelreg_worker_events_dead_lettered_total", "Records sent to the dead-letter topic", ["reason"]
)
DEAD_LETTERS_DROPPED = Counter(
    "modelreg_worker_dead_letters_dropped_total",
    "Rejected records the DLQ refused even without their payload; skipped, only logged",
    ["reason"],
)
BATCH_SIZE = Histogram(
    "modelreg_worker_batch_size", "Records per batch", buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 5000)
)
APPLY_SECONDS = Histogram("modelreg_worker_apply_seconds", "Time to apply one batch to MongoDB")
RETRIES = Counter("modelreg_worker_retries_total", "Retries after a MongoDB or Kafka failure", ["operation"])
CONSUMER_LAG = Gauge(
    "modelreg_worker_consumer_lag", "Records behind the partition's highwater mark", ["topic", "partition"]
)
HEALTH_REPORTS_APPLIED = Counter(
    "modelreg_worker_health_reports_applied_total",
    "Cluster health reports stored (newer than the stored one)",
)
UNREACHABLE_EVENTS = Counter(
    "modelreg_worker_unreachable_events_total",
    "deployment.unhealthy events published for models of an unreachable cluster",
)
COMMANDS_SENT = Counter(
    "modelreg_worker_commands_sent_total",
    "Commands the worker sent on its own",
    ["reason"],
)
EVENTS_TOMBSTONED = Counter(
    "modelreg_worker_events_tombstoned_total",
    "Late deleting/deleted events of a deleted model, acknowledged against its tombstone (not dead-lettered)",
    ["event_type"],
)
