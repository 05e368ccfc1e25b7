"""The registrar seam of presigned uploads: a confirmed upload becomes a namespace's model or a shared one.

Both run the checks of their multipart upload (`ModelRegistration.register_spooled`,
`OrgModelCatalog.register_spooled`); this module only builds their form from what the upload announced.
"""

from __future__ import annotations

from modelreg.services.api.models.registration import ModelRegistration
from modelreg.services.api.models.schemas import GIB, UploadForm
from modelreg.services.api.models.upload import SpooledArchive
from modelreg.services.api.org_models.catalog import OrgModelCatalog
from modelreg.services.api.org_models.schemas import OrgUploadForm
from modelreg.services.api.uploads.ports import RegisteredModel
from modelreg.shared.documents import UploadRecord


def upload_form(upload: UploadRecord) -> UploadForm:
    """The multipart upload's fields, as announced when the upload was created."""
    requirements = upload.resource_requirements
    return UploadForm(
        name=upload.name,
        version=upload.version,
        model_format=str(upload.model_format),
        framework=upload.framework,
        task_type=upload.task_type,
        num_cpus=requirements.num_cpus,
        num_gpus=requirements.num_gpus,
        memory_gb=requirements.memory / GIB,
    )


def org_upload_form(upload: UploadRecord) -> OrgUploadForm:
    form = upload_form(upload)
    return OrgUploadForm(
        name=form.name,
        version=form.version,
        model_format=form.model_format,
        framework=form.framework,
        task_type=form.task_type,
        num_cpus=form.num_cpus,
        num_gpus=form.num_gpus,
        memory_gb=form.memory_gb,
        description=upload.description,
    )


class UploadRegistrar:
    """Registers with the namespace's registration, or with the shared catalog when the owner is None."""

    def __init__(self, namespaced: ModelRegistration, shared: OrgModelCatalog) -> None:
        self.namespaced = namespaced
        self.shared = shared

    async def check_version_free(self, namespace_id: str | None, name: str, version: str) -> None:
        if namespace_id is None:
            await self.shared.check_version_free(name, version)
        else:
            await self.namespaced.check_version_free(namespace_id, name, version)

    async def register_spooled(
        self, namespace_id: str | None, upload: UploadRecord, archive: SpooledArchive
    ) -> RegisteredModel:
        if namespace_id is None:
            return await self.shared.register_spooled(org_upload_form(upload), archive)
        return await self.namespaced.register_spooled(namespace_id, upload_form(upload), archive)
