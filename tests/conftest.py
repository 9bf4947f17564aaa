"""Settings for every test."""

from hypothesis import settings

# Fixed examples (the same run on every machine) and no per-example deadline:
# CI's 2 cores run live homeservers beside the property tests.
settings.register_profile("project", deadline=None, derandomize=True)
settings.load_profile("project")
