"""One subpackage per storage engine; the shared code lives one level up."""
