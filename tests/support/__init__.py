"""What several test modules share that is neither a test nor a fixture.

Spec validation, fake and real collaborators (identity providers, a sqlite
transaction, a third-party login module, an SSO browser, and in ``fakes`` what
the portal's services are given in unit tests), and what the live tests know
of the homeservers their fixtures start.
"""
