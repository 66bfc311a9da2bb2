"""omniq.core: the OmniQ facade (in progress)."""
