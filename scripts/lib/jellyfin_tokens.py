"""HS256 tokens as Jellyfin's OpenWatchParty plugin issues them (PROTOCOL.md §4), for the
scripts that drive a server in JWT mode: scripts/e2e_resume.py, scripts/browser_sync/run.py."""
import base64
import hashlib
import hmac
import json
import time


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_hs256(secret, sub, name, lifetime_s=3600):
    """A token for `sub` named `name`, with the `aud` and `iss` the server expects by default."""
    now = int(time.time())
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"sub": sub, "name": name, "aud": "OpenWatchParty", "iss": "Jellyfin", "iat": now, "exp": now + lifetime_s}
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64url(signature)}"
