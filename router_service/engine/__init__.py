"""The decision engine: validate → cache → features → strategy → answer. No gRPC in here."""
