from pathlib import Path

import pytest

from router_service.bundles.registry import load_routers
from router_service.config import load_settings
from router_service.errors import ConfigError
from router_service.strategies.registry import StrategyRegistry


def test_defaults_serve_static_routers_on_localhost() -> None:
    s = load_settings()
    assert (s.server.host, s.server.port, s.server.workers) == ("127.0.0.1", 50051, 1)
    assert s.default_router is None
    assert [r.strategy for r in s.routers] == [
        "round-robin",
        "weighted",
        "fallback",
        "cheapest",
        "fixed",
    ]


def test_precedence_overrides_then_env_then_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "server:\n  port: 6000\n  host: 0.0.0.0\n  max_concurrent_rpcs: 7\n"
        "limits:\n  max_candidates: 3\n"
    )
    monkeypatch.setenv("ROUTEIQ_SERVER__PORT", "6001")
    monkeypatch.setenv("ROUTEIQ_LIMITS__MAX_CANDIDATES", "4")
    s = load_settings(cfg, server={"host": "127.0.0.2"})
    assert s.server.host == "127.0.0.2"  # flag beats env and file
    assert s.server.port == 6001  # env beats file
    assert s.server.max_concurrent_rpcs == 7  # file beats default
    assert s.limits.max_candidates == 4


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "routers:\n  - {name: main, strategy: fixed, params: {ranking: {a: 1}}}\n"
        "default_router: main\n"
    )
    monkeypatch.setenv("ROUTEIQ_CONFIG", str(cfg))
    s = load_settings()
    assert [r.name for r in s.routers] == ["main"]
    assert s.routers[0].params == {"ranking": {"a": 1}}


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "routers:\n  - {name: a, strategy: fixed}\n  - {name: a, strategy: cheapest}\n"
            "default_router: a\n",
            "router names must be unique, repeated: a",
        ),
        ("server:\n  prot: 1\n", "prot"),
        ("server:\n  port: 70000\n", "less than or equal to 65535"),
        ("engine:\n  router_timeouts_ms: {slow: 0}\n", "timeouts must be > 0 ms, not for: slow"),
    ],
)
def test_invalid_config_says_what_is_wrong(tmp_path: Path, yaml_text: str, message: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message):
        load_settings(cfg)


def test_default_router_must_name_a_router_or_bundle() -> None:
    s = load_settings(default_router="nope")
    with pytest.raises(ConfigError, match="default_router 'nope' is not one of the routers"):
        s.resolved_default([])
    assert load_settings(default_router="nope").resolved_default(["nope"]) == "nope"
    assert load_settings().resolved_default(["ml-a", "ml-b"]) == "ml-a"
    assert load_settings().resolved_default([]) == "cheapest"


def test_router_timeouts_must_name_loaded_routers() -> None:
    s = load_settings(engine={"router_timeouts_ms": {"cheapest": 200, "minilm": 500}})
    with pytest.raises(
        ConfigError,
        match="router_timeouts_ms names routers that are not loaded: minilm; loaded: cheapest",
    ):
        load_routers(s, StrategyRegistry(s.strategies))
    ok = load_settings(engine={"router_timeouts_ms": {"cheapest": 200}})
    assert "cheapest" in load_routers(ok, StrategyRegistry(ok.strategies)).routers


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "absent.yaml")


def test_deploy_example_config_is_valid() -> None:
    s = load_settings(Path(__file__).resolve().parents[2] / "deploy" / "config.example.yaml")
    assert s.server.workers == 2
    assert s.default_router == "default"
    assert {r.name: r.strategy for r in s.routers}["failover"] == "fallback"
