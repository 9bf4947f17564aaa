"""Single sign-on through the portal: the flow, browser sessions, IdP mappings."""
