"""Fault tests: engine restarts, server-side connection kills, multi-process claims."""
