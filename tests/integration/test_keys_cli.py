"""`modelreg keys` and the dev stack's key, run as the real command line against the test's MongoDB."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import msgspec
import pytest

from modelreg.services.devstack.embedded import free_port
from modelreg.services.keys.service import KeyService
from modelreg.shared.adapters.mongo import ApiKeyStore
from modelreg.shared.api_keys import KEY_PATTERN, hash_key
from tests.api_support import api_client, bearer


def modelreg(settings, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "modelreg.services.cli", *args],
        env={**os.environ, **settings.as_env()},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def created_key(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    key = result.stdout.rstrip("\n").splitlines()[-1]
    assert KEY_PATTERN.fullmatch(key), result.stdout
    return key


async def test_keys_create_prints_the_key_last_and_stores_only_its_hash(topics, db) -> None:
    peppered = msgspec.structs.replace(topics, api_key_pepper="pepper-for-this-test")

    key = created_key(modelreg(peppered, "keys", "create", "--namespace", "ns_a", "--namespace", "ns_b"))

    (record,) = await db.api_keys.find().to_list()
    prefix = key.split("_")[1]
    assert (
        record["prefix"] == prefix and record["namespaces"] == ["ns_a", "ns_b"] and record["admin"] is False
    )
    assert record["key_hash"] == hash_key(key, "pepper-for-this-test")
    secret = key.split("_", 2)[2]
    assert secret not in repr(record)

    # One app for before and after the revocation (its auth cache is off): it must see the revoke.
    async with api_client(peppered, key) as client:
        assert (await client.get("/v1/namespaces/ns_a/models")).status_code == 200
        assert (await client.get("/v1/namespaces/ns_b/models")).status_code == 200
        assert (await client.get("/v1/namespaces/ns_c/models")).status_code == 404

        listed = modelreg(peppered, "keys", "list")
        assert listed.returncode == 0 and prefix in listed.stdout and secret not in listed.stdout
        revoked = modelreg(peppered, "keys", "revoke", prefix)
        assert revoked.returncode == 0, revoked.stderr
        assert (await client.get("/v1/namespaces/ns_a/models")).status_code == 401
    assert "revoked" in modelreg(peppered, "keys", "list").stdout


async def test_admin_keys_reach_every_namespace(topics, db) -> None:
    key = created_key(modelreg(topics, "keys", "create", "--admin"))
    async with api_client(topics, key) as client:
        assert (await client.get("/v1/namespaces/anything/models")).status_code == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "at least one --namespace"),
        (("--namespace", "a/b"), "invalid namespace"),
        (("--namespace", ".."), "invalid namespace"),
        (("--namespace", ".incoming"), "invalid namespace"),
        (("--namespace", "équipe-日本"), "invalid namespace"),
    ],
)
async def test_keys_create_refuses_unusable_requests(settings, db, args, message) -> None:
    result = modelreg(settings, "keys", "create", *args)
    assert result.returncode == 2 and message in result.stderr
    assert await db.api_keys.count_documents({}) == 0


async def test_revoking_an_unknown_prefix_fails(settings, db) -> None:
    result = modelreg(settings, "keys", "revoke", "0123456789ab")
    assert result.returncode == 1 and "no key" in result.stderr


async def test_dev_key_is_kept_in_a_private_file_and_renewed_when_unusable(db, tmp_path) -> None:
    service = KeyService(ApiKeyStore(), "")
    key_file = tmp_path / "state" / "dev-api-key"

    first = await service.ensure_dev_key(key_file)
    assert key_file.read_text().strip() == first and key_file.stat().st_mode & 0o777 == 0o600
    assert await service.ensure_dev_key(key_file) == first  # reused while valid

    await service.revoke(first.split("_")[1])
    renewed = await service.ensure_dev_key(key_file)
    assert renewed != first and key_file.read_text().strip() == renewed
    assert await service.authenticate(renewed) is not None and await service.authenticate(first) is None


def test_modelreg_dev_prints_a_working_key(topics, tmp_path) -> None:
    port = free_port()
    env = {**os.environ, **topics.as_env(), "MODELREG_API_PORT": str(port), "MODELREG_LOG_FORMAT": "console"}
    output = tmp_path / "dev.out"
    with output.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelreg.services.cli", "dev", "--no-ray", "--no-demo"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        key_file = tmp_path / ".modelreg" / "dev-api-key"
        deadline = time.monotonic() + 120
        while "API key" not in output.read_text():
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.05)
        key = key_file.read_text().strip()
        assert f"API key        {key}" in output.read_text()

        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/namespaces/demo/models", headers=bearer(key)
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.mark.parametrize(
    ("namespace", "model_id", "archive_url", "message"),
    [
        ("ns", "a/b", None, "invalid model_id"),
        ("équipe", "m1", None, "invalid namespace_id"),
        ("ns", "m1", "file:///etc/passwd", "outside the archive root"),
        ("ns", "m1", "/proc/self/environ", "outside the archive root"),
        ("ns", "m1", "s3://someone-elses-bucket/m1.tar.gz", "not in the configured bucket"),
        ("ns", "m1", "https://example.invalid/m1.tar.gz", "unsupported archive URL scheme"),
    ],
)
async def test_models_register_refuses_bad_ids_and_foreign_archives(
    settings, db, namespace, model_id, archive_url, message
) -> None:
    archive_url = archive_url or f"file://{Path(settings.archive_root).resolve()}/ns/m1.tar.gz"
    result = modelreg(
        settings, "models", "register", "--namespace", namespace, "--model-id", model_id,
        "--name", "m", "--format", "onnx", "--archive-url", archive_url, "--hash", "0" * 64,
    )  # fmt: skip
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert await db.custom_models.count_documents({}) == 0


async def test_models_register_accepts_an_archive_under_the_root(settings, db) -> None:
    archive_url = f"file://{Path(settings.archive_root).resolve()}/ns/m1.tar.gz"
    result = modelreg(
        settings, "models", "register", "--namespace", "ns", "--model-id", "m1",
        "--name", "m", "--format", "onnx", "--archive-url", archive_url, "--hash", "0" * 64,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip() == "m1", result.stderr
    assert (await db.custom_models.find_one({"model_id": "m1"}))["model_archive_url"] == archive_url
