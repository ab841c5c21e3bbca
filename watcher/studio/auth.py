"""Who may use the page: loopback needs no token; LAN mode needs the token, once per browser.

The token is made on first use and kept in ``<state>/studio-token`` (mode 0600). A browser that
gives it gets a session cookie (HttpOnly, SameSite=Strict) whose value is an HMAC of the token,
so it survives a restart and changes when the token does. Every form carries a CSRF value
derived from the page's secret; both are compared in constant time. Wrong tokens from one
address slow down: after ``free`` failures, each next try must wait twice as long as the last.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

TOKEN_FILE = "studio-token"
SESSION_COOKIE = "facedrop_session"


def load_or_create_token(state_dir: Path) -> tuple[str, bool]:
    """The LAN token and whether it was made just now (then the caller shows it, once)."""
    path = state_dir / TOKEN_FILE
    state_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)  # someone loosened it: a token readable by others is no token
        return path.read_text(encoding="utf-8").strip(), False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    return token, True


def _mac(secret: str, purpose: str) -> str:
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time string comparison."""
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(slots=True)
class _Failures:
    count: int = 0
    last: float = 0.0


@dataclass(slots=True)
class Guard:
    """The page's access rules. ``token`` None: loopback mode, no login."""

    token: str | None
    secret: str = field(default_factory=lambda: secrets.token_hex(32))
    free: int = 3  # wrong tokens allowed before the slow-down starts
    base_delay: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, _Failures] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.token is not None:  # the CSRF secret follows the token, so it survives restarts
            self.secret = _mac(self.token, "csrf-secret")

    @property
    def lan(self) -> bool:
        return self.token is not None

    def session_value(self) -> str:
        assert self.token is not None
        return _mac(self.token, "session")

    def has_session(self, cookie: str | None) -> bool:
        return not self.lan or (cookie is not None and same(cookie, self.session_value()))

    def csrf(self) -> str:
        return _mac(self.secret, "csrf")

    def csrf_ok(self, value: str | None) -> bool:
        return value is not None and same(value, self.csrf())

    def wait_left(self, client: str) -> float:
        """Seconds this address must wait before its next try (0: it may try now)."""
        f = self._failures.get(client)
        if f is None or f.count < self.free:
            return 0.0
        delay = min(300.0, self.base_delay * 2 ** (f.count - self.free))
        return max(0.0, f.last + delay - self.clock())

    def check_token(self, client: str, given: str) -> bool:
        """Compare a login try; count a failure against the address."""
        assert self.token is not None
        if same(given.strip(), self.token):
            self._failures.pop(client, None)
            return True
        f = self._failures.setdefault(client, _Failures())
        f.count += 1
        f.last = self.clock()
        return False
