"""synapse-login-redirect: one login address for many Matrix homeservers.

The three names homeserver.yaml can give are the public API.
"""

from synapse_login_redirect.login_redirect import LoginRedirect
from synapse_login_redirect.sso.oidc_mapping import OidcMappingProvider
from synapse_login_redirect.sso.saml_mapping import SamlMappingProvider

__all__ = ["LoginRedirect", "OidcMappingProvider", "SamlMappingProvider"]
