"""The module's configuration, parsed and checked at start-up."""
