"""The Synapse releases this module supports: the one place they are named.

No imports here: ``dev.py`` and the packaging tests read this file without
importing Synapse.
"""

# The oldest supported Synapse release; every newer one is supported too.
SUPPORTED_SYNAPSE = "1.136.0"
