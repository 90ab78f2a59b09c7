"""What runs in or beside the edge (LiteLLM proxy, Envoy)."""
