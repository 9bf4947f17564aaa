"""Routing: which homeserver a login goes to. Pure: no Synapse imports."""
