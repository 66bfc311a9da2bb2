"""The NATS JetStream backend (nats-py): ``_backend.NatsBackend``.

The package imports no driver; the driver comes with ``_backend``.
"""
