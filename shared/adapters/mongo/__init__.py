"""MongoDB through Beanie, one module per job.

- `connection`: the journaled client with Beanie set up
- `model_store`: `custom_models` (the worker's guarded writes, the registry's reads and writes)
- `org_model_store`: `org_models` (shared models) and their namespace copies
- `listing`: filters, orders and pipelines of the API's listings
- `key_store`: `api_keys`
- `audit_store`: `audit_log` (the audit trail)
- `upload_store`: `model_uploads` (presigned uploads)
- `cluster_store`: `ray_clusters` (named Ray clusters, their observed health) and models' placements
- `alias_store`: `model_aliases` (aliases of model names)
- `tombstone_store`: `model_tombstones` (keys of deleted models, for the worker)
- `mapping`: documents to and from the rules' structs

The names below are the package's public surface; import them from `shared.adapters.mongo`.
"""

from modelreg.shared.adapters.mongo.alias_store import AliasStore
from modelreg.shared.adapters.mongo.audit_store import AuditStore
from modelreg.shared.adapters.mongo.cluster_store import ClusterStore, DuplicateClusterError, PlacedModel
from modelreg.shared.adapters.mongo.connection import MongoClient, connect, connect_when_available, ping
from modelreg.shared.adapters.mongo.key_store import ApiKeyStore, DuplicateKeyPrefixError
from modelreg.shared.adapters.mongo.listing import LIST_SORTS, ModelFilter
from modelreg.shared.adapters.mongo.mapping import key_filter, observed_from_details
from modelreg.shared.adapters.mongo.model_store import (
    DuplicateModelError,
    DuplicateModelIdError,
    ModelRegisteredError,
    ModelStore,
)
from modelreg.shared.adapters.mongo.org_model_store import OrgModelStore
from modelreg.shared.adapters.mongo.tombstone_store import TombstoneStore
from modelreg.shared.adapters.mongo.upload_store import UploadStore
from modelreg.shared.deployment_rules import OBSERVED_ON_SERVE, ObservedChange

__all__ = [
    "LIST_SORTS",
    "OBSERVED_ON_SERVE",
    "AliasStore",
    "ApiKeyStore",
    "ClusterStore",
    "DuplicateClusterError",
    "PlacedModel",
    "AuditStore",
    "DuplicateKeyPrefixError",
    "DuplicateModelError",
    "DuplicateModelIdError",
    "ModelFilter",
    "ModelRegisteredError",
    "ModelStore",
    "MongoClient",
    "OrgModelStore",
    "ObservedChange",
    "TombstoneStore",
    "UploadStore",
    "connect",
    "connect_when_available",
    "key_filter",
    "observed_from_details",
    "ping",
]
