"""Transport security (TLS, mutual TLS, certificate rotation) and caller authentication."""
