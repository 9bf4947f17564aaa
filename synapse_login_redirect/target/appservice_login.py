"""Appservice login (MSC2778) with the MSC's error codes and its unstable type.

The module checks the request first and answers refusals itself. An accepted
login goes on to Synapse's own appservice login (the unstable type renamed to
the stable one), so Synapse still rate-limits, checks deactivation and creates
the device and access token.
"""

from __future__ import annotations

import logging
from typing import Final, Literal, get_args

import attr
from synapse.module_api import ModuleApi, UserID
from synapse.module_api.errors import Codes, InvalidClientCredentialsError, SynapseError

from synapse_login_redirect._synapse import (
    AppserviceView,
    SynapseRequest,
    appservice_of_request,
)
from synapse_login_redirect.gateway.login_body import USER_ID, LoginBody, read_login
from synapse_login_redirect.gateway.request_body import replace_json_body

logger = logging.getLogger(__name__)

STABLE_TYPE = "m.login.application_service"
UNSTABLE_TYPE = "uk.half-shot.msc2778.login.application_service"
APPSERVICE_TYPES = (STABLE_TYPE, UNSTABLE_TYPE)
# The spec's errcode (v1.17); older Synapse releases use an unstable name.
APPSERVICE_LOGIN_UNSUPPORTED = "M_APPSERVICE_LOGIN_UNSUPPORTED"

# Which errors refuse a bad appservice login: "msc2778", the MSC's codes
# (checked by the module); "synapse", Synapse's own, untouched.
ErrorStyle = Literal["msc2778", "synapse"]
ERROR_STYLES: tuple[ErrorStyle, ...] = get_args(ErrorStyle)
ERRORS_MSC2778: Final = "msc2778"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class AppserviceLoginConfig:
    """Which appservice login types the module handles, and with which errors."""

    types: tuple[str, ...] = APPSERVICE_TYPES
    errors: ErrorStyle = ERRORS_MSC2778


def _forbidden(message: str) -> SynapseError:
    return SynapseError(403, message, Codes.FORBIDDEN)


def _invalid(message: str) -> SynapseError:
    return SynapseError(400, message, Codes.INVALID_PARAM)


class AppserviceLogin:
    """Checks appservice logins before Synapse completes them."""

    def __init__(self, config: AppserviceLoginConfig, api: ModuleApi) -> None:
        self._config = config
        self._api = api

    async def intercept(self, request: SynapseRequest) -> None:
        """Refuse a bad appservice login, or pass it on as Synapse's stable type.

        Requests of other login types are left alone.
        """
        login = read_login(request)
        if login.type not in self._config.types:
            return
        if self._config.errors == ERRORS_MSC2778:
            await self._check(request, login)
        if login.type == UNSTABLE_TYPE:
            replace_json_body(request, {**login.fields, "type": STABLE_TYPE})

    async def _check(self, request: SynapseRequest, login: LoginBody) -> None:
        appservice = self._appservice_of(request)
        if appservice.msc4190_device_management:
            raise SynapseError(
                400,
                "This appservice manages its devices itself (MSC4190), so it "
                "cannot use appservice login; create devices with PUT /devices.",
                APPSERVICE_LOGIN_UNSUPPORTED,
            )
        user_id = self._user_id(login)
        if not appservice.is_interested_in_user(user_id):
            raise SynapseError(
                403,
                f"{user_id} is not in the user namespace of this appservice",
                Codes.EXCLUSIVE,
            )
        if user_id == appservice.sender:
            # Synapse has no account row for the sender: a token it issued
            # would be refused on first use.
            raise _forbidden(
                f"{user_id} is this appservice's sender, which has no account to "
                "log in to; use the as_token itself for it"
            )
        if not await self._api.check_user_exists(user_id):
            raise _forbidden(
                f"{user_id} is not registered; register it with POST /register "
                f"(type {STABLE_TYPE}) first"
            )

    def _appservice_of(self, request: SynapseRequest) -> AppserviceView:
        try:
            appservice = appservice_of_request(self._api, request)
        except InvalidClientCredentialsError:
            raise _forbidden(
                "Appservice login needs the appservice's as_token, as "
                "'Authorization: Bearer <as_token>' or '?access_token='"
            ) from None
        if appservice is None:
            raise _forbidden("The access token is not an appservice's as_token")
        return appservice

    def _user_id(self, login: LoginBody) -> str:
        """The full user ID from ``identifier`` (MSC2778 accepts only m.id.user)."""
        identifier = login.identifier
        if identifier is None:
            raise _invalid(
                f"Appservice login needs 'identifier': {{'type': '{USER_ID}', "
                "'user': ...}; the top-level 'user' field is not accepted (MSC2778)"
            )
        if identifier.type != USER_ID:
            raise _invalid(f"Appservice login accepts only identifier type '{USER_ID}'")
        user = identifier.user
        if not user:
            raise _invalid("'identifier.user' must be a user ID or a localpart")
        if not user.startswith("@"):
            return self._api.get_qualified_user_id(user)
        try:
            user_id = UserID.from_string(user)
        except SynapseError:
            raise _invalid(f"{user!r} is not a valid user ID") from None
        if not self._api.is_mine(user_id):
            raise _forbidden(f"{user} is not a user of this homeserver")
        return user_id.to_string()
