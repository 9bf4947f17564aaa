"""The target role: what a homeserver that users log in to adds (MSC1730, MSC1731, MSC2778)."""
