"""``omniq_worker`` and ``omniq_scheduler``."""
