"""Decision and feature caches."""
