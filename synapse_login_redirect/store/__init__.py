"""The module's tables in Synapse's database, one module per table."""
