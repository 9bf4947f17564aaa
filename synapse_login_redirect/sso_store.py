"""SSO state the portal keeps in Synapse's database, so any worker can use it.

- sign-in sessions: started on the home-realm page (target known) or before
  the portal's own IdP login (target decided afterwards from the user's
  attributes), completed once when the target sends the browser back; bound
  to the browser by a cookie nonce, of which only a hash is stored;
- the attributes or claims the portal's own IdP gave, by remote user id, for
  a short while;
- login tokens: which target minted a token, by the token's hash (never the
  token), for ``m.login.token`` at the portal.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping

import attr
from synapse.module_api import LoggingTransaction, ModuleApi

from synapse_login_redirect.database import module_tables
from synapse_login_redirect.schema import SSO_ATTRIBUTES, SSO_SESSIONS, SSO_TOKENS


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@attr.s(frozen=True, slots=True, auto_attribs=True)
class NewSession:
    session_id: str  # goes into the completion URL
    nonce: str  # goes into the browser's cookie


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Completion:
    """A session checked: its target (if known), IdP and client URL, or a refusal."""

    target: str | None = None
    idp_id: str | None = None
    client_redirect_url: str | None = None
    refusal: str | None = None  # one of the REFUSED_* values


REFUSED_UNKNOWN = "unknown"
REFUSED_EXPIRED = "expired"
REFUSED_USED = "used"
REFUSED_OTHER_BROWSER = "other browser"


class SsoStore:
    def __init__(self, api: ModuleApi) -> None:
        self._tables = module_tables(api)

    async def start_session(
        self,
        target: str | None,
        idp_id: str | None,
        client_redirect_url: str,
        lifetime_ms: int,
    ) -> NewSession:
        """A session for ``target``, or (None) one whose target comes later."""
        new = NewSession(secrets.token_urlsafe(24), secrets.token_urlsafe(24))
        now = self._tables.now_ms()
        await self._tables.run(
            "login_redirect_start_sso",
            _insert_session,
            new.session_id,
            _hash(new.nonce),
            target,
            idp_id,
            client_redirect_url,
            now,
            now + lifetime_ms,
        )
        return new

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

    async def set_target(self, session_id: str, target: str) -> bool:
        """Give a pending session its target; False if it already had one."""
        return await self._tables.run(
            "login_redirect_set_sso_target", _set_target, session_id, target
        )

    async def remember_attributes(
        self, remote_user_id: str, attributes: Mapping[str, list[str]], lifetime_ms: int
    ) -> None:
        now = self._tables.now_ms()
        await self._tables.run(
            "login_redirect_remember_attributes",
            _upsert_attributes,
            remote_user_id,
            json.dumps(attributes),
            now,
            now + lifetime_ms,
        )

    async def attributes_of(self, remote_user_id: str) -> dict[str, list[str]] | None:
        raw = await self._tables.run(
            "login_redirect_attributes",
            _select_attributes,
            remote_user_id,
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
    now: int,
    expires: int,
) -> None:
    txn.execute(f"DELETE FROM {SSO_SESSIONS} WHERE expires_ts < ?", (now,))
    txn.execute(
        f"INSERT INTO {SSO_SESSIONS} (session_id, nonce_hash, target, idp_id,"
        " client_redirect_url, expires_ts) VALUES (?, ?, ?, ?, ?, ?)",
        (session_id, nonce_hash, target, idp_id, client_redirect_url, expires),
    )


def _checked_session(
    txn: LoggingTransaction, session_id: str, nonce_hash: str | None, now: int
) -> Completion | tuple[str | None, str | None, str]:
    """A refusal, or the session's target, idp id and client URL."""
    txn.execute(
        f"SELECT nonce_hash, target, idp_id, client_redirect_url, expires_ts, used_ts"
        f" FROM {SSO_SESSIONS} WHERE session_id = ?",
        (session_id,),
    )
    row = txn.fetchone()
    if row is None:
        return Completion(refusal=REFUSED_UNKNOWN)
    stored_hash, target, idp_id, url, expires, used = row
    if used is not None:
        return Completion(refusal=REFUSED_USED)
    if expires < now:
        return Completion(refusal=REFUSED_EXPIRED)
    if nonce_hash is None or not hmac.compare_digest(stored_hash, nonce_hash):
        return Completion(refusal=REFUSED_OTHER_BROWSER)
    return target, idp_id, url


def _pending_session(
    txn: LoggingTransaction, session_id: str, nonce_hash: str | None, now: int
) -> Completion:
    checked = _checked_session(txn, session_id, nonce_hash, now)
    if isinstance(checked, Completion):
        return checked
    target, idp_id, url = checked
    if target is not None:
        return Completion(refusal=REFUSED_USED)
    return Completion(idp_id=idp_id, client_redirect_url=url)


def _set_target(txn: LoggingTransaction, session_id: str, target: str) -> bool:
    txn.execute(
        f"UPDATE {SSO_SESSIONS} SET target = ? WHERE session_id = ? AND target IS NULL",
        (target, session_id),
    )
    return bool(txn.rowcount == 1)


def _complete_session(
    txn: LoggingTransaction, session_id: str, nonce_hash: str | None, now: int
) -> Completion:
    checked = _checked_session(txn, session_id, nonce_hash, now)
    if isinstance(checked, Completion):
        return checked
    target, idp_id, url = checked
    if target is None:  # the portal's own IdP login has not come back yet
        return Completion(refusal=REFUSED_UNKNOWN)
    txn.execute(
        f"UPDATE {SSO_SESSIONS} SET used_ts = ? WHERE session_id = ? AND used_ts IS NULL",
        (now, session_id),
    )
    if txn.rowcount != 1:  # another worker completed it first
        return Completion(refusal=REFUSED_USED)
    return Completion(target=target, idp_id=idp_id, client_redirect_url=url)


def _insert_token(
    txn: LoggingTransaction, token_hash: str, target: str, now: int, expires: int
) -> None:
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


def _upsert_attributes(
    txn: LoggingTransaction, remote_id: str, attributes: str, now: int, expires: int
) -> None:
    txn.execute(f"DELETE FROM {SSO_ATTRIBUTES} WHERE expires_ts < ?", (now,))
    txn.execute(
        f"INSERT INTO {SSO_ATTRIBUTES} (remote_user_id, attributes, expires_ts)"
        " VALUES (?, ?, ?) ON CONFLICT (remote_user_id) DO UPDATE"
        " SET attributes = excluded.attributes, expires_ts = excluded.expires_ts",
        (remote_id, attributes, expires),
    )


def _select_attributes(txn: LoggingTransaction, remote_id: str, now: int) -> str | None:
    txn.execute(
        f"SELECT attributes FROM {SSO_ATTRIBUTES}"
        " WHERE remote_user_id = ? AND expires_ts >= ?",
        (remote_id, now),
    )
    row = txn.fetchone()
    return None if row is None else str(row[0])
