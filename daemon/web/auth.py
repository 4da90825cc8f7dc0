"""Who may use the owner's page: whoever can read the data directory.

The secret is 32 random bytes in ``DATA_DIR/ui.secret`` (mode 0600, like the node key), made
at first start. A browser gets in through a one-time login link that ``novacron ui`` asks the
daemon for over the control socket (itself 0600): the link's token is good once and for
``LOGIN_TTL_S``, and buys a session cookie (HttpOnly, SameSite=Strict) derived from the secret,
so sessions survive a daemon restart and end when the secret file is replaced. Scripts may send
``Authorization: Bearer <secret>`` instead.

Forms carry a CSRF token derived from the secret, and every request must name our own host
(``127.0.0.1:PORT`` or ``localhost:PORT``) so a hostile web page cannot reach the daemon by DNS
rebinding. Pure apart from ``load_or_create_secret``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

LOGIN_TTL_S = 300.0
MAX_PENDING = 16
COOKIE = "novacron_session"


def load_or_create_secret(data_dir: Path) -> bytes:
    path = data_dir / "ui.secret"
    try:
        text = path.read_text().strip()
        if len(text) == 64:
            os.chmod(path, 0o600)
            return bytes.fromhex(text)
    except (FileNotFoundError, ValueError):
        pass
    secret = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret.hex() + "\n")
    os.chmod(path, 0o600)
    return secret


class Gate:
    def __init__(self, secret: bytes, port: int) -> None:
        self.secret = secret
        self.port = port
        self._logins: dict[str, float] = {}  # token -> expires (monotonic seconds)

    def _derive(self, purpose: str) -> str:
        return hmac.new(self.secret, purpose.encode(), hashlib.sha256).hexdigest()

    @property
    def session(self) -> str:
        return self._derive("novacron/ui/session/v1")

    @property
    def csrf(self) -> str:
        return self._derive("novacron/ui/csrf/v1")

    def new_login(self, now: float) -> str:
        self._logins = {t: exp for t, exp in self._logins.items() if exp > now}
        while len(self._logins) >= MAX_PENDING:
            self._logins.pop(next(iter(self._logins)))
        token = secrets.token_urlsafe(24)
        self._logins[token] = now + LOGIN_TTL_S
        return token

    def use_login(self, token: str, now: float) -> bool:
        expires = self._logins.pop(token, None)
        return expires is not None and expires > now

    def host_ok(self, host: str) -> bool:
        return host in (f"127.0.0.1:{self.port}", f"localhost:{self.port}")

    def authorised(self, cookie_header: str, authorization: str) -> bool:
        if authorization.startswith("Bearer "):
            return hmac.compare_digest(authorization[7:].strip().encode(),
                                       self.secret.hex().encode())
        for part in cookie_header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and hmac.compare_digest(value.encode(), self.session.encode()):
                return True
        return False

    def csrf_ok(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.csrf.encode())

    def cookie(self) -> str:
        return f"{COOKIE}={self.session}; Path=/; HttpOnly; SameSite=Strict"
