"""Local deployments of real homeservers with the module, on loopback.

``homeserver`` starts and drives Synapse processes (the launcher the live
tests and the benchmarks use), ``workers`` adds Synapse workers, PostgreSQL,
Redis and nginx, and ``demo`` is the deployment ``python3 dev.py demo`` shows.
"""
