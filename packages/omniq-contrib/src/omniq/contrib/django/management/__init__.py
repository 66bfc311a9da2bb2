"""Management commands of omniq.contrib.django."""
