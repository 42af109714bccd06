"""Launch data for the Mini App as Telegram's client would pass it, signed with the
playground's own bot token: the playground opens the app for whichever resident the page is
acting as, and the app checks the signature as it checks Telegram's."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import datetime
from urllib.parse import quote, urlencode


def launch_data(token: str, *, user: dict[str, object], now: datetime) -> str:
    """``initData``: the fields sorted by key and joined with newlines, signed with
    HMAC-SHA256 under the key HMAC-SHA256("WebAppData", token), as Telegram documents."""
    fields = {
        "auth_date": str(int(now.timestamp())),
        "query_id": secrets.token_urlsafe(12),
        "user": json.dumps(user, ensure_ascii=False, separators=(",", ":")),
    }
    check = "\n".join(f"{key}={value}" for key, value in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode(fields)


def launch_url(url: str, init_data: str) -> str:
    """The app's address with the launch data in its fragment, where Telegram puts it."""
    return (
        f"{url}#tgWebAppData={quote(init_data, safe='')}&tgWebAppVersion=8.0&tgWebAppPlatform=web"
    )
