"""Size caps on what anonymous browsers send the portal's sign-in pages.

Every field the pages read has a cap in UTF-8 bytes, and a request body has
one in all; Twisted caps the request line and headers (16 KiB together).
Beyond them the browser gets an error page and nothing is looked up or stored.
"""

from __future__ import annotations

import io
import ipaddress

from synapse_login_redirect._synapse import SynapseRequest
from synapse_login_redirect.web.urls import (
    DEPARTMENT_PARAM,
    IDP_PARAM,
    LOGIN_TOKEN_PARAM,
    REDIRECT_URL_PARAM,
    SESSION_PARAM,
    USER_PARAM,
)

# A client's redirectUrl, as Synapse's confirmation page shows it.
MAX_REDIRECT_URL_BYTES = 2048
# A Matrix ID is at most 255 bytes, an email address 254.
MAX_USER_BYTES = 255
# A label of portal.sso.departments.
MAX_DEPARTMENT_BYTES = 255
# An idp id: Synapse's are at most 250 bytes plus an "oidc-" prefix.
MAX_IDP_ID_BYTES = 255
# The portal's session ids are 32 bytes.
MAX_SESSION_ID_BYTES = 64
# A target's login token: Synapse's are about 30 bytes.
MAX_LOGIN_TOKEN_BYTES = 1024

# Form and query fields, by name.
FIELD_LIMITS = {
    REDIRECT_URL_PARAM: MAX_REDIRECT_URL_BYTES,
    USER_PARAM: MAX_USER_BYTES,
    DEPARTMENT_PARAM: MAX_DEPARTMENT_BYTES,
    IDP_PARAM: MAX_IDP_ID_BYTES,
    SESSION_PARAM: MAX_SESSION_ID_BYTES,
    LOGIN_TOKEN_PARAM: MAX_LOGIN_TOKEN_BYTES,
}
# A request body: every field at its cap, percent-encoded, fits.
MAX_BODY_BYTES = 16 * 1024
# A login body (JSON), at every server with the module: real ones are well
# under 1 KiB; the module reads it before Synapse does.
MAX_LOGIN_BODY = 64 * 1024


# One IPv6 client holds a whole /64 (SLAAC, privacy addresses).
IPV6_CLIENT_PREFIX = 64


def rate_limit_key(address: str) -> str:
    """Whom a sign-in page's rate limit counts: an IPv4 address, or the /64
    network of an IPv6 one, so one client cannot count as millions."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        network = ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False)
        return str(network)
    return address


def body_size(request: SynapseRequest) -> int:
    """The request body's length in bytes, leaving it readable."""
    content = request.content
    if content is None:
        return 0
    size = int(content.seek(0, io.SEEK_END))
    content.seek(0)
    return size


def oversized(
    request: SynapseRequest, **fields: bytes | None
) -> tuple[int, str] | None:
    """Why the request is beyond the caps, and its status (413 or 400), if it is.

    Checks the body, every value of the form and query fields named in
    ``FIELD_LIMITS``, and ``fields``: values taken from elsewhere (the path).
    """
    if body_size(request) > MAX_BODY_BYTES:
        return 413, f"The request is too large (more than {MAX_BODY_BYTES} bytes)."
    values = [
        (name, value)
        for name in FIELD_LIMITS
        for value in request.args.get(name.encode("ascii"), [])
    ]
    values += [(name, value) for name, value in fields.items() if value is not None]
    for name, value in values:
        if len(value) > FIELD_LIMITS[name]:
            return 400, f"{name} is longer than {FIELD_LIMITS[name]} bytes."
    return None
