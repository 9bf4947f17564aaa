"""The module's tables in Synapse's database, and their migrations.

``MIGRATIONS[n - 1]`` brings the schema from version ``n - 1`` to ``n``; the
version reached is kept in ``SCHEMA_VERSION_TABLE``. A release that changes
the tables appends a migration and never edits a released one. Version 1
creates the tables only if absent: releases before the version table made
the same tables on first use.
"""

from __future__ import annotations

SCHEMA_VERSION_TABLE = "login_redirect_schema_version"
ASSIGNMENTS = "login_redirect_assignments"
SSO_SESSIONS = "login_redirect_sso_sessions"
SSO_CLAIMS = "login_redirect_sso_claims"
SSO_TOKENS = "login_redirect_sso_tokens"
TARGET_HEALTH = "login_redirect_target_health"
_OLD_SSO_ATTRIBUTES = "login_redirect_sso_attributes"

CREATE_SCHEMA_VERSION_TABLE = f"""
CREATE TABLE IF NOT EXISTS {SCHEMA_VERSION_TABLE} (version INTEGER NOT NULL)
"""

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        f"""
        CREATE TABLE IF NOT EXISTS {ASSIGNMENTS} (
            user_key TEXT NOT NULL PRIMARY KEY,
            target TEXT NOT NULL,
            assigned_ts BIGINT NOT NULL
        )
        """,
        f"""
        CREATE TABLE IF NOT EXISTS {SSO_SESSIONS} (
            session_id TEXT NOT NULL PRIMARY KEY,
            nonce_hash TEXT NOT NULL,
            target TEXT,
            idp_id TEXT,
            client_redirect_url TEXT NOT NULL,
            expires_ts BIGINT NOT NULL,
            used_ts BIGINT
        )
        """,
        # IdP claims by remote user id alone: replaced in version 2.
        f"""
        CREATE TABLE IF NOT EXISTS {_OLD_SSO_ATTRIBUTES} (
            remote_user_id TEXT NOT NULL PRIMARY KEY,
            attributes TEXT NOT NULL,
            expires_ts BIGINT NOT NULL
        )
        """,
        f"""
        CREATE TABLE IF NOT EXISTS {SSO_TOKENS} (
            token_hash TEXT NOT NULL PRIMARY KEY,
            target TEXT NOT NULL,
            expires_ts BIGINT NOT NULL
        )
        """,
    ),
    (
        f"""
        CREATE TABLE {TARGET_HEALTH} (
            target TEXT NOT NULL PRIMARY KEY,
            healthy BOOLEAN NOT NULL,
            checked_ts BIGINT NOT NULL
        )
        """,
        # The user key of a new pool assignment, stored when the sign-in completes.
        f"ALTER TABLE {SSO_SESSIONS} ADD COLUMN assign_user_key TEXT",
        # IdP claims by IdP and subject, for the bounce of their own sign-in.
        f"""
        CREATE TABLE {SSO_CLAIMS} (
            idp_id TEXT NOT NULL,
            remote_user_id TEXT NOT NULL,
            attributes TEXT NOT NULL,
            stored_ts BIGINT NOT NULL,
            expires_ts BIGINT NOT NULL,
            PRIMARY KEY (idp_id, remote_user_id)
        )
        """,
        f"DROP TABLE {_OLD_SSO_ATTRIBUTES}",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
