"""Hardening tests: credentials kept out of output, task ids checked at every lookup."""
