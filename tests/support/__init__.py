"""Test harness helpers: start real processes on free ports, stop them by pid."""
