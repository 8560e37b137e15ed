"""Rig parts: the real and simulated hardware a rig file binds to resources."""
