"""OmniQ benchmarks: peer comparison harness (``python -m benchmarks.peers``) and
micro-benchmarks of single components."""
