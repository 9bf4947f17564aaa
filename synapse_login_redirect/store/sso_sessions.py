"""The portal's SSO sign-in sessions, in Synapse's database so any worker can
complete them.

A session starts on the home-realm page (target known) or before the portal's
own IdP login (target decided afterwards from the user's attributes), and
completes once, when the target sends the browser back. It is bound to the
browser by a cookie nonce, of which only a hash is stored, and holds the user
key of a new pool assignment, stored only once the sign-in completes. At most
``max_sessions`` are in progress at once.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import Final, Literal

import attr
from synapse.module_api import LoggingTransaction

from synapse_login_redirect.store.schema import SSO_SESSIONS
from synapse_login_redirect.store.tables import (
    ModuleTables,
    purge_expired,
    secret_hash,
)

# Why a session returning to the portal is refused.
Refusal = Literal["unknown", "expired", "used", "other browser"]
REFUSED_UNKNOWN: Final = "unknown"
REFUSED_EXPIRED: Final = "expired"
REFUSED_USED: Final = "used"
REFUSED_OTHER_BROWSER: Final = "other browser"


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


class SsoSessionTable:
    """The sign-in sessions in progress, each used once."""

    def __init__(self, tables: ModuleTables) -> None:
        self._tables = tables

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
            secret_hash(new.nonce),
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
            None if nonce is None else secret_hash(nonce),
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
    purge_expired(txn, SSO_SESSIONS, now)
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
) -> Completion:
    """The session, unless it is refused (unknown, used, expired, or another
    browser's)."""
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
    return Completion(
        target=target,
        idp_id=idp_id,
        client_redirect_url=url,
        expires_ts=int(expires),
        assign_user_key=assign_user_key,
    )


def _pending_session(
    txn: LoggingTransaction, session_id: str, nonce_hash: str | None, now: int
) -> Completion:
    session = _checked_session(txn, session_id, nonce_hash, now)
    if session.refusal is not None:
        return session
    if session.target is not None:
        return Completion(refusal=REFUSED_USED)
    return attr.evolve(session, assign_user_key=None)


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
    session = _checked_session(txn, session_id, nonce_hash, now)
    if session.refusal is not None:
        return session
    if session.target is None:  # the portal's own IdP login has not come back yet
        return Completion(refusal=REFUSED_UNKNOWN)
    txn.execute(
        f"UPDATE {SSO_SESSIONS} SET used_ts = ? WHERE session_id = ? AND used_ts IS NULL",
        (now, session_id),
    )
    if txn.rowcount != 1:  # another worker completed it first
        return Completion(refusal=REFUSED_USED)
    return session
