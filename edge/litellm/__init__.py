"""The LiteLLM edge: a proxy callback that asks the RouteIQ Router service which deployment answers.

The callback lives in :mod:`edge.litellm.plugin` (it imports ``litellm``, so this package does
not import it eagerly). Load it from the proxy config::

    litellm_settings:
      callbacks: edge.litellm.plugin.routeiq_router

Contract, in short: every deployment pick of a routed model group asks the service over one warm
``grpc.aio`` channel per proxy worker, bounded by ``ROUTEIQ_EDGE_DEADLINE_MS`` (default 30 ms);
when the service is slow, down, or answers with no usable model, the pick fails open to the
proxy's own ``routing_strategy``. ``edge/litellm/config.yaml`` is a local config,
``deploy/litellm/config.yaml`` the production one, ``edge/litellm/launch.py`` starts the service
and the proxy together.
"""

__all__: list[str] = []
