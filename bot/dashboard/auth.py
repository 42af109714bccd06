"""The dashboard's session cookie: a random session id and its HMAC, nothing else.

The id is looked up (as its digest) in ``dashboard_sessions`` on every request, so a session
can expire or end however valid its cookie looks; the signature only spares the database
lookups of forged cookies and ties cookies to the secret (a new secret at every start, when
``WEB_SECRET`` is unset, ends every session at a restart).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

COOKIE = "whistle_dashboard"
COOKIE_PATH = "/dashboard"


class Signer:
    def __init__(self, secret: str | None) -> None:
        self.generated = secret is None
        self._key = (secret or secrets.token_urlsafe(32)).encode()

    def _mac(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def sign(self, value: str) -> str:
        return f"{value}.{self._mac(value)}"

    def unsign(self, signed: str | None) -> str | None:
        """The value of a cookie this signer made, or None."""
        if not signed or "." not in signed or len(signed) > 256:
            return None
        value, mac = signed.rsplit(".", 1)
        if not hmac.compare_digest(mac.encode(), self._mac(value).encode()):
            return None
        return value
