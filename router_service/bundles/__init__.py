"""Where routers come from: static strategies from the config, learned ones from bundles."""
