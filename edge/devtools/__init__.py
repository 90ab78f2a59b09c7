"""Development tools beside the edges: starting and stopping child processes on 127.0.0.1,
and fake OpenAI-compatible upstreams. The demo launchers, the benchmarks and the tests share
them; the service itself never imports them."""
