"""The login gateway: where the module meets Synapse's login endpoints."""
