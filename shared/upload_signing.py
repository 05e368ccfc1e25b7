"""PURE: the signature of the API's own upload URLs (presigned uploads on filesystem storage).

`PUT /v1/uploads/{upload_id}?expires=<unix seconds>&signature=<hex>`: the signature is an HMAC-SHA256, keyed
with MODELREG_UPLOAD_SIGNING_KEY, of the method, the upload id and the expiry, so neither can be changed
without the key. It is the URL's only credential (no API key), so it never appears in logs.
"""

from __future__ import annotations

import enum
import hashlib
import hmac

SIGNATURE_VERSION = "v1"


class SignatureCheck(enum.StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    EXPIRED = "expired"


def upload_signature(secret: bytes, upload_id: str, expires: int) -> str:
    message = f"{SIGNATURE_VERSION}\nPUT\n{upload_id}\n{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def check_upload_signature(
    secret: bytes, upload_id: str, expires: str | None, signature: str | None, now_s: float
) -> SignatureCheck:
    """Valid, invalid (missing, malformed or not ours) or expired; the signature is checked first, so an
    expired answer is only ever given to a URL the registry really issued."""
    if not expires or not signature or not expires.isdigit() or len(expires) > 12:
        return SignatureCheck.INVALID
    expected = upload_signature(secret, upload_id, int(expires))
    if not hmac.compare_digest(expected, signature.lower()):
        return SignatureCheck.INVALID
    if int(expires) <= now_s:
        return SignatureCheck.EXPIRED
    return SignatureCheck.VALID
