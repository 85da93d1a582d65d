"""Browser sessions for people who log in with a password: a random session id in an HttpOnly,
SameSite=Strict cookie, a CSRF token every state-changing request must echo in a header, and a
limiter that refuses a name (and the address it is tried from) after repeated wrong passwords.

Kept in memory and bounded: a restarted station logs everyone out, which is the safe direction.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

COOKIE = "lineguard_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_HOURS = 8.0  # a shift
MAX_SESSIONS = 1000  # the oldest goes first beyond this
FAILURES = 5  # wrong passwords allowed ...
FAILURE_WINDOW_S = 300.0  # ... within this long, per name and per address
MAX_TRACKED = 10_000  # names and addresses the limiter remembers at most


@dataclass(frozen=True)
class Session:
    user: str
    role: str
    csrf: str
    expires: float  # time.monotonic()


class Sessions:
    def __init__(self, hours: float = SESSION_HOURS, limit: int = MAX_SESSIONS) -> None:
        self.seconds, self.limit = hours * 3600.0, limit
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, user: str, role: str) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        session = Session(user, role, secrets.token_urlsafe(32), time.monotonic() + self.seconds)
        with self._lock:
            self._sessions[sid] = session
            while len(self._sessions) > self.limit:
                self._sessions.popitem(last=False)
        return sid, session

    def get(self, sid: str) -> Session | None:
        with self._lock:
            session = self._sessions.get(sid)
            if session is not None and session.expires < time.monotonic():
                del self._sessions[sid]
                return None
            return session

    def close(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def close_user(self, user: str) -> None:
        """Log a user out everywhere (disabled, role changed)."""
        with self._lock:
            for sid in [s for s, session in self._sessions.items() if session.user == user]:
                del self._sessions[sid]


def csrf_ok(session: Session, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), session.csrf.encode())


class LoginLimiter:
    """Wrong passwords per key (a name, an address) within a sliding window."""

    def __init__(self, failures: int = FAILURES, window_s: float = FAILURE_WINDOW_S) -> None:
        self.failures, self.window_s = failures, window_s
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._seen.setdefault(key, deque())
        while times and now - times[0] > self.window_s:
            times.popleft()
        self._seen.move_to_end(key)
        while len(self._seen) > MAX_TRACKED:
            self._seen.popitem(last=False)
        return times

    def retry_after(self, *keys: str) -> float:
        """Seconds until these keys may try again; 0 when they may now."""
        now = time.monotonic()
        with self._lock:
            waits = []
            for key in keys:
                times = self._recent(key, now)
                if len(times) >= self.failures:
                    waits.append(self.window_s - (now - times[0]))
            return max(waits, default=0.0)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, name_key: str) -> None:
        """A right password forgives that name's failures, not its address's: else one's own
        account would reset the count between guesses at another's."""
        with self._lock:
            self._seen.pop(name_key, None)
