"""gRPC surfaces: thin layers that validate, convert and delegate to the engine."""
