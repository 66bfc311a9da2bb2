"""omniq.queue: queue orchestration (in progress)."""
