"""The module's web pages, redirect policy and URL helpers."""
