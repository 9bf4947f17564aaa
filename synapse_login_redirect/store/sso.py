"""SSO state the portal keeps in Synapse's database, so any worker can use it.

- sign-in sessions: started on the home-realm page (target known) or before
  the portal's own IdP login (target decided afterwards from the user's
  attributes), completed once when the target sends the browser back; bound
  to the browser by a cookie nonce, of which only a hash is stored; with the
  user key of a new pool assignment, stored only once the sign-in completes;
  at most ``max_sessions`` at once;
- the attributes or claims the portal's own IdPs gave, by IdP and remote user
  id, until the bounce of that sign-in takes them (once) or they expire;
- login tokens: which target minted a token, by the token's hash (never the
  token), for ``m.login.token`` at the portal.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from typing import Final, Literal

import attr
from synapse.module_api import LoggingTransaction, ModuleApi

from synapse_login_redirect.store.schema import SSO_CLAIMS, SSO_SESSIONS, SSO_TOKENS
from synapse_login_redirect.store.tables import module_tables, read_committed

# Claims serve the bounce that follows their sign-in, which brings a login
# token that lives 2 minutes (Synapse's SSO tokens); a margin beyond that.
CLAIMS_LIFETIME_MS = 3 * 60 * 1000


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@attr.s(frozen=True, slots=True, auto_attribs=True)
class NewSession:
    """A sign-in session just stored: its id and the browser cookie's nonce."""

    session_id: str  # goes into the completion URL
    nonce: str  # goes into the browser's cookie


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Completion:
    """A session checked: its target (if known), IdP, client URL and expiry,
    or a refusal."""

    target: str | None = None
    idp_id: str | None = None
    client_redirect_url: str | None = None
    expires_ts: int = 0
    refusal: Refusal | None = None
    # The user whose new pool assignment to the target completion stores.
    assign_user_key: str | None = None


# Why a session was refused: one of the REFUSED_* values.
Refusal = Literal["unknown", "expired", "used", "other browser"]
REFUSED_UNKNOWN: Final = "unknown"
REFUSED_EXPIRED: Final = "expired"
REFUSED_USED: Final = "used"
REFUSED_OTHER_BROWSER: Final = "other browser"


class SsoStore:
    """The portal's SSO state: sessions, login tokens' targets, IdP claims."""

    def __init__(self, api: ModuleApi) -> None:
        self._tables = module_tables(api)

    async def start_session(
        self,
        target: str | None,
        idp_id: str | None,
        client_redirect_url: str,
        assign_user_key: str | None,
        *,
        lifetime_ms: int,
        max_sessions: int,
    ) -> NewSession | None:
        """A session for ``target``, or (None) one whose target comes later;
        None if ``max_sessions`` sessions are already in progress."""
        new = NewSession(secrets.token_urlsafe(24), secrets.token_urlsafe(24))
        now = self._tables.now_ms()
        started = await self._tables.run(
            "login_redirect_start_sso",
            _insert_session,
            new.session_id,
            _hash(new.nonce),
            target,
            idp_id,
            client_redirect_url,
            assign_user_key,
            now,
            now + lifetime_ms,
            max_sessions,
        )
        return new if started else None

    async def complete_session(self, session_id: str, nonce: str | None) -> Completion:
        """Use a session once, from the browser holding its cookie nonce."""
        return await self._check(_complete_session, session_id, nonce)

    async def pending_session(self, session_id: str, nonce: str | None) -> Completion:
        """A session still waiting for its target (after the portal's own IdP)."""
        return await self._check(_pending_session, session_id, nonce)

    async def _check(
        self,
        check: Callable[[LoggingTransaction, str, str | None, int], Completion],
        session_id: str,
        nonce: str | None,
    ) -> Completion:
        return await self._tables.run(
            "login_redirect_check_sso",
            check,
            session_id,
            None if nonce is None else _hash(nonce),
            self._tables.now_ms(),
        )

    async def set_target(
        self, session_id: str, target: str, assign_user_key: str | None
    ) -> bool:
        """Give a pending session its target (and the user key of a new pool
        assignment to it); False if it already had one."""
        return await self._tables.run(
            "login_redirect_set_sso_target",
            _set_target,
            session_id,
            target,
            assign_user_key,
        )

    async def remember_claims(
        self, idp_id: str, remote_user_id: str, attributes: Mapping[str, list[str]]
    ) -> None:
        """What an IdP said of a user at the sign-in in progress."""
        now = self._tables.now_ms()
        await self._tables.run(
            "login_redirect_remember_claims",
            _upsert_claims,
            idp_id,
            remote_user_id,
            json.dumps(attributes),
            now,
            now + CLAIMS_LIFETIME_MS,
        )

    async def take_claims(
        self, idp_id: str, remote_user_id: str, not_before: int
    ) -> dict[str, list[str]] | None:
        """The claims an IdP gave for a user since ``not_before`` (ms), once."""
        raw = await self._tables.run(
            "login_redirect_take_claims",
            _take_claims,
            idp_id,
            remote_user_id,
            not_before,
            self._tables.now_ms(),
        )
        return None if raw is None else dict(json.loads(raw))

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
    target: str | None,
    idp_id: str | None,
    client_redirect_url: str,
    assign_user_key: str | None,
    now: int,
    expires: int,
    max_sessions: int,
) -> bool:
    """Purge expired sessions, then insert one unless ``max_sessions`` remain."""
    read_committed(txn)  # purges by several workers at once: no retries
    txn.execute(f"DELETE FROM {SSO_SESSIONS} WHERE expires_ts < ?", (now,))
    txn.execute(f"SELECT COUNT(*) FROM {SSO_SESSIONS}")
    row = txn.fetchone()
    if row is not None and row[0] >= max_sessions:
        return False
    txn.execute(
        f"INSERT INTO {SSO_SESSIONS} (session_id, nonce_hash, target, idp_id,"
        " client_redirect_url, expires_ts, assign_user_key)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            session_id,
            nonce_hash,
            target,
            idp_id,
            client_redirect_url,
            expires,
            assign_user_key,
        ),
    )
    return True


def _checked_session(
    txn: LoggingTransaction, session_id: str, nonce_hash: str | None, now: int
) -> Completion | tuple[str | None, str | None, str, str | None, int]:
    """A refusal, or the session's target, idp id, client URL, user key to
    assign and expiry."""
    txn.execute(
        f"SELECT nonce_hash, target, idp_id, client_redirect_url, expires_ts,"
        f" used_ts, assign_user_key FROM {SSO_SESSIONS} WHERE session_id = ?",
        (session_id,),
    )
    row = txn.fetchone()
    if row is None:
        return Completion(refusal=REFUSED_UNKNOWN)
    stored_hash, target, idp_id, url, expires, used, assign_user_key = row
    if used is not None:
        return Completion(refusal=REFUSED_USED)
    if expires < now:
        return Completion(refusal=REFUSED_EXPIRED)
    if nonce_hash is None or not hmac.compare_digest(stored_hash, nonce_hash):
        return Completion(refusal=REFUSED_OTHER_BROWSER)
    return target, idp_id, url, assign_user_key, int(expires)


def _pending_session(
    txn: LoggingTransaction, session_id: str, nonce_hash: str | None, now: int
) -> Completion:
    checked = _checked_session(txn, session_id, nonce_hash, now)
    if isinstance(checked, Completion):
        return checked
    target, idp_id, url, _, expires = checked
    if target is not None:
        return Completion(refusal=REFUSED_USED)
    return Completion(idp_id=idp_id, client_redirect_url=url, expires_ts=expires)


def _set_target(
    txn: LoggingTransaction,
    session_id: str,
    target: str,
    assign_user_key: str | None,
) -> bool:
    txn.execute(
        f"UPDATE {SSO_SESSIONS} SET target = ?, assign_user_key = ?"
        " WHERE session_id = ? AND target IS NULL",
        (target, assign_user_key, session_id),
    )
    return bool(txn.rowcount == 1)


def _complete_session(
    txn: LoggingTransaction, session_id: str, nonce_hash: str | None, now: int
) -> Completion:
    checked = _checked_session(txn, session_id, nonce_hash, now)
    if isinstance(checked, Completion):
        return checked
    target, idp_id, url, assign_user_key, expires = checked
    if target is None:  # the portal's own IdP login has not come back yet
        return Completion(refusal=REFUSED_UNKNOWN)
    txn.execute(
        f"UPDATE {SSO_SESSIONS} SET used_ts = ? WHERE session_id = ? AND used_ts IS NULL",
        (now, session_id),
    )
    if txn.rowcount != 1:  # another worker completed it first
        return Completion(refusal=REFUSED_USED)
    return Completion(
        target=target,
        idp_id=idp_id,
        client_redirect_url=url,
        assign_user_key=assign_user_key,
        expires_ts=expires,
    )


def _insert_token(
    txn: LoggingTransaction, token_hash: str, target: str, now: int, expires: int
) -> None:
    read_committed(txn)  # purges by several workers at once: no retries
    txn.execute(f"DELETE FROM {SSO_TOKENS} WHERE expires_ts < ?", (now,))
    txn.execute(
        f"INSERT INTO {SSO_TOKENS} (token_hash, target, expires_ts) VALUES (?, ?, ?)"
        " ON CONFLICT (token_hash) DO NOTHING",
        (token_hash, target, expires),
    )


def _token_target(txn: LoggingTransaction, token_hash: str, now: int) -> str | None:
    txn.execute(
        f"SELECT target FROM {SSO_TOKENS} WHERE token_hash = ? AND expires_ts >= ?",
        (token_hash, now),
    )
    row = txn.fetchone()
    return None if row is None else str(row[0])


def _upsert_claims(
    txn: LoggingTransaction,
    idp_id: str,
    remote_id: str,
    attributes: str,
    now: int,
    expires: int,
) -> None:
    read_committed(txn)  # purges by several workers at once: no retries
    txn.execute(f"DELETE FROM {SSO_CLAIMS} WHERE expires_ts < ?", (now,))
    txn.execute(
        f"INSERT INTO {SSO_CLAIMS}"
        " (idp_id, remote_user_id, attributes, stored_ts, expires_ts)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (idp_id, remote_user_id) DO UPDATE"
        " SET attributes = excluded.attributes, stored_ts = excluded.stored_ts,"
        " expires_ts = excluded.expires_ts",
        (idp_id, remote_id, attributes, now, expires),
    )


def _take_claims(
    txn: LoggingTransaction, idp_id: str, remote_id: str, not_before: int, now: int
) -> str | None:
    """Select and delete in one go: one bounce at most uses a claim set."""
    key = (idp_id, remote_id, not_before, now)
    where = (
        " WHERE idp_id = ? AND remote_user_id = ?"
        " AND stored_ts >= ? AND expires_ts >= ?"
    )
    txn.execute(f"SELECT attributes FROM {SSO_CLAIMS}{where}", key)
    row = txn.fetchone()
    if row is None:
        return None
    txn.execute(f"DELETE FROM {SSO_CLAIMS}{where}", key)
    if txn.rowcount != 1:  # another worker took them first
        return None
    return str(row[0])
