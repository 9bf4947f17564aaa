"""SSO state the portal keeps in Synapse's database, so any worker can use it.

- sign-in sessions: started on the home-realm page, completed once when the
  target sends the browser back; bound to the browser by a cookie nonce, of
  which only a hash is stored;
- login tokens: which target minted a token, by the token's hash (never the
  token), for ``m.login.token`` at the portal.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import attr
from synapse.module_api import LoggingTransaction, ModuleApi

from synapse_login_redirect.database import ModuleTables

_SESSIONS = "login_redirect_sso_sessions"
_TOKENS = "login_redirect_sso_tokens"
_CREATE_SESSIONS = f"""
CREATE TABLE IF NOT EXISTS {_SESSIONS} (
    session_id TEXT NOT NULL PRIMARY KEY,
    nonce_hash TEXT NOT NULL,
    target TEXT NOT NULL,
    client_redirect_url TEXT NOT NULL,
    expires_ts BIGINT NOT NULL,
    used_ts BIGINT
)
"""
_CREATE_TOKENS = f"""
CREATE TABLE IF NOT EXISTS {_TOKENS} (
    token_hash TEXT NOT NULL PRIMARY KEY,
    target TEXT NOT NULL,
    expires_ts BIGINT NOT NULL
)
"""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@attr.s(frozen=True, slots=True, auto_attribs=True)
class NewSession:
    session_id: str  # goes into the completion URL
    nonce: str  # goes into the browser's cookie


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Completion:
    """The outcome of completing a session: a target and URL, or a refusal."""

    target: str | None = None
    client_redirect_url: str | None = None
    refusal: str | None = None  # one of the REFUSED_* values


REFUSED_UNKNOWN = "unknown"
REFUSED_EXPIRED = "expired"
REFUSED_USED = "used"
REFUSED_OTHER_BROWSER = "other browser"


class SsoStore:
    def __init__(self, api: ModuleApi) -> None:
        self._tables = ModuleTables(api, _CREATE_SESSIONS, _CREATE_TOKENS)

    async def start_session(
        self, target: str, client_redirect_url: str, lifetime_ms: int
    ) -> NewSession:
        new = NewSession(secrets.token_urlsafe(24), secrets.token_urlsafe(24))
        now = self._tables.now_ms()
        await self._tables.run(
            "login_redirect_start_sso",
            _insert_session,
            new.session_id,
            _hash(new.nonce),
            target,
            client_redirect_url,
            now,
            now + lifetime_ms,
        )
        return new

    async def complete_session(self, session_id: str, nonce: str | None) -> Completion:
        """Use a session once, from the browser holding its cookie nonce."""
        return await self._tables.run(
            "login_redirect_complete_sso",
            _complete_session,
            session_id,
            None if nonce is None else _hash(nonce),
            self._tables.now_ms(),
        )

    async def remember_token(self, token: str, target: str, lifetime_ms: int) -> None:
        now = self._tables.now_ms()
        await self._tables.run(
            "login_redirect_remember_token",
            _insert_token,
            _hash(token),
            target,
            now,
            now + lifetime_ms,
        )

    async def target_of_token(self, token: str) -> str | None:
        """The target that minted ``token``, while the record lasts.

        Kept until it expires, so a login that failed on the way (a target
        briefly down) can be retried; the target itself accepts a token once.
        """
        return await self._tables.run(
            "login_redirect_token_target",
            _token_target,
            _hash(token),
            self._tables.now_ms(),
        )


def _insert_session(
    txn: LoggingTransaction,
    session_id: str,
    nonce_hash: str,
    target: str,
    client_redirect_url: str,
    now: int,
    expires: int,
) -> None:
    txn.execute(f"DELETE FROM {_SESSIONS} WHERE expires_ts < ?", (now,))
    txn.execute(
        f"INSERT INTO {_SESSIONS} (session_id, nonce_hash, target,"
        " client_redirect_url, expires_ts) VALUES (?, ?, ?, ?, ?)",
        (session_id, nonce_hash, target, client_redirect_url, expires),
    )


def _complete_session(
    txn: LoggingTransaction, session_id: str, nonce_hash: str | None, now: int
) -> Completion:
    txn.execute(
        f"SELECT nonce_hash, target, client_redirect_url, expires_ts, used_ts"
        f" FROM {_SESSIONS} WHERE session_id = ?",
        (session_id,),
    )
    row = txn.fetchone()
    if row is None:
        return Completion(refusal=REFUSED_UNKNOWN)
    stored_hash, target, url, expires, used = row
    if used is not None:
        return Completion(refusal=REFUSED_USED)
    if expires < now:
        return Completion(refusal=REFUSED_EXPIRED)
    if nonce_hash is None or not hmac.compare_digest(stored_hash, nonce_hash):
        return Completion(refusal=REFUSED_OTHER_BROWSER)
    txn.execute(
        f"UPDATE {_SESSIONS} SET used_ts = ? WHERE session_id = ? AND used_ts IS NULL",
        (now, session_id),
    )
    if txn.rowcount != 1:  # another worker completed it first
        return Completion(refusal=REFUSED_USED)
    return Completion(target=target, client_redirect_url=url)


def _insert_token(
    txn: LoggingTransaction, token_hash: str, target: str, now: int, expires: int
) -> None:
    txn.execute(f"DELETE FROM {_TOKENS} WHERE expires_ts < ?", (now,))
    txn.execute(
        f"INSERT INTO {_TOKENS} (token_hash, target, expires_ts) VALUES (?, ?, ?)"
        " ON CONFLICT (token_hash) DO NOTHING",
        (token_hash, target, expires),
    )


def _token_target(txn: LoggingTransaction, token_hash: str, now: int) -> str | None:
    txn.execute(
        f"SELECT target FROM {_TOKENS} WHERE token_hash = ? AND expires_ts >= ?",
        (token_hash, now),
    )
    row = txn.fetchone()
    return None if row is None else str(row[0])
