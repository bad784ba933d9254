"""Open WebSockets and SSE streams end with the session they were opened in.

A socket is authenticated once, at its handshake; without this watch it would go on
receiving its user's jobs after a logout, after the user is disabled, and long after
the token expired. Every `interval_s` the users behind open sockets are read again
(one read per user, not per socket) and a socket whose session is over is closed with
4401, as one opened without a session would be. A logout on this replica closes its
sockets at once; a logout on another replica, or `jauge users disable`, within
`interval_s`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from prometheus_client import Counter

from gateway.hub import Connection
from gateway.security import TokenClaims
from gateway.users import UserRepository, still_valid

logger = logging.getLogger("gateway.sessions")

CLOSE_SESSION_ENDED = 4401
SESSIONS_ENDED = Counter(
    "jauge_sessions_ended_total", "Sockets and streams closed because their session ended."
)


class SessionWatch:
    def __init__(self, users: UserRepository, interval_s: float) -> None:
        self.users = users
        self.interval_s = interval_s
        self._sessions: dict[Connection, TokenClaims] = {}

    def add(self, connection: Connection, claims: TokenClaims) -> None:
        self._sessions[connection] = claims

    def remove(self, connection: Connection) -> None:
        self._sessions.pop(connection, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def end(self, username: str, token_id: str) -> None:
        """A logout here: that session's sockets go now."""
        for connection, claims in list(self._sessions.items()):
            if claims.username == username and claims.token_id == token_id:
                self._close(connection, "logged out")

    async def check(self) -> None:
        """Close every socket whose token expired, was revoked, or whose user is gone."""
        now = datetime.now(UTC)
        by_user: dict[str, list[tuple[Connection, TokenClaims]]] = {}
        for connection, claims in list(self._sessions.items()):
            if claims.session_end <= now:
                self._close(connection, "session expired")
            else:
                by_user.setdefault(claims.username, []).append((connection, claims))
        for username, sessions in by_user.items():
            user = await self.users.get(username)
            for connection, claims in sessions:
                if not still_valid(user, claims):
                    self._close(connection, "session ended")

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:  # the store away: try again next round
                logger.warning("session check failed", exc_info=True)

    def _close(self, connection: Connection, reason: str) -> None:
        self._sessions.pop(connection, None)
        SESSIONS_ENDED.inc()
        connection.fail(CLOSE_SESSION_ENDED, reason)
