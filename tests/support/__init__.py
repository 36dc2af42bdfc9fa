"""Helpers shared by the test suite: oracles, strategies, settings, stand-ins."""
