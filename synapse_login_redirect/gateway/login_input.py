"""Refuse login fields of the wrong JSON type before Synapse reads them.

Synapse answers 500 to some of these (a list as ``identifier.user``, a number
as an e-mail ``address`` or as ``device_id``; a number as ``token`` on
PostgreSQL; text with an unpaired surrogate such as ``"\\ud800"``, which is
valid JSON but not Unicode, or with NUL on PostgreSQL). Every login
the gateway hooks passes this check first, whatever the module's role; it only
refuses bodies Synapse would refuse anyway. It also copies an ``m.id.phone``
identifier's ``phone`` (the spec's name) to ``number``, without which Synapse
answers 500.
"""

from __future__ import annotations

from synapse.module_api.errors import Codes, SynapseError

from synapse_login_redirect._synapse import SynapseRequest
from synapse_login_redirect.gateway.limits import MAX_LOGIN_BODY, body_size
from synapse_login_redirect.gateway.login_body import read_login
from synapse_login_redirect.gateway.request_body import replace_json_body
from synapse_login_redirect.target.well_known import LoginAnswer


async def check_login_input(request: SynapseRequest) -> LoginAnswer | None:
    """An interceptor: 413 ``M_TOO_LARGE`` for a body over ``MAX_LOGIN_BODY``
    (before it is parsed), Synapse's error for a body that is not a JSON
    object, 400 ``M_INVALID_PARAM`` for a mistyped field, else None."""
    if body_size(request) > MAX_LOGIN_BODY:
        raise SynapseError(
            413, f"A login may have at most {MAX_LOGIN_BODY} bytes", Codes.TOO_LARGE
        )
    login = read_login(request)
    login.check()
    with_number = login.with_phone_number()
    if with_number is not None:
        replace_json_body(request, with_number)
    return None
