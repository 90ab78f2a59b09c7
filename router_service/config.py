"""One typed settings object for the whole service.

Sources, strongest first: explicit overrides (command-line flags), environment variables with
the ``ROUTEIQ_`` prefix (nested fields joined by ``__``, e.g. ``ROUTEIQ_SERVER__PORT=50052``),
the YAML file (``--config FILE`` or ``ROUTEIQ_CONFIG``), then the defaults written here. Every
option and its default is documented in the README; settings are validated once, at start-up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from router_service.errors import ConfigError, field_problems

__all__ = [
    "AuthSettings",
    "BundleSettings",
    "CacheSettings",
    "EngineSettings",
    "ExtProcRoute",
    "ExtProcSettings",
    "HealthSettings",
    "LimitsSettings",
    "MetricsSettings",
    "RateLimitSettings",
    "RateRule",
    "RedisSettings",
    "RegistrySettings",
    "RouterSpec",
    "S3Settings",
    "ServerSettings",
    "Settings",
    "TelemetrySettings",
    "TlsSettings",
    "TokenSpec",
    "TracingSettings",
    "load_settings",
]

STATIC_KINDS = ("round-robin", "weighted", "fallback", "cheapest", "fixed")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    """The gRPC server: address, limits, keepalive, processes."""

    host: str = "127.0.0.1"
    port: int = Field(50051, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64, description="processes sharing the port (SO_REUSEPORT)")
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    reflection: bool = True
    grace_period_s: float = Field(10.0, ge=0)
    drain_delay_s: float = Field(
        5.0,
        ge=0,
        description="after SIGTERM: NOT_SERVING while still taking calls, before stopping",
    )
    max_message_bytes: int = Field(1024 * 1024, ge=1024)
    max_concurrent_rpcs: int = Field(1024, ge=1)
    keepalive_time_ms: int = Field(30_000, ge=1000)
    keepalive_timeout_ms: int = Field(10_000, ge=100)
    keepalive_permit_without_calls: bool = True
    min_ping_interval_ms: int = Field(10_000, ge=0)
    max_connection_age_s: float | None = Field(
        None,
        gt=0,
        description="close each client connection after this age (calls in flight get "
        "grace_period_s), so that clients balancing over DNS re-resolve and reach new replicas; "
        "unset: connections live on",
    )


class TlsSettings(_Section):
    """TLS on the gRPC ports (Router API and ext_proc); mutual TLS with ``client_ca_file``."""

    cert_file: Path | None = Field(None, description="server certificate chain (PEM)")
    key_file: Path | None = Field(None, description="its private key (PEM, unencrypted)")
    client_ca_file: Path | None = Field(
        None, description="CA bundle that signs client certificates: mutual TLS"
    )
    require_client_cert: bool = Field(
        True, description="with client_ca_file: refuse clients without a valid certificate"
    )
    reload_s: float = Field(
        5.0, ge=0, description="check the files for a rotated certificate at most this often"
    )
    health_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="also serve the health service alone in plaintext on this port (probes)",
    )

    @model_validator(mode="after")
    def _pairs(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.cert_file is None and (self.client_ca_file or self.health_port is not None):
            raise ValueError("client_ca_file and health_port need cert_file and key_file")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class TokenSpec(_Section):
    """One bearer token, stored as its sha256: the tenant it speaks for and its routers."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", repr=False)
    tenant: str = Field(min_length=1, max_length=256)
    routers: list[str] = Field(default_factory=lambda: ["*"], description="'*' = every router")


class AuthSettings(_Section):
    """Bearer-token authentication of callers (``authorization: Bearer TOKEN`` metadata)."""

    tokens_file: Path | None = Field(
        None, description="YAML file: tokens: [{sha256, tenant, routers}] (sha256 of the token)"
    )
    tokens: list[TokenSpec] = Field(
        default_factory=list, description="the same list inline (or from ROUTEIQ_AUTH__TOKENS)"
    )
    exempt: list[Literal["health", "reflection"]] = Field(
        default_factory=lambda: ["health", "reflection"],  # type: ignore[arg-type]
        description="services that answer without a token",
    )

    @property
    def enabled(self) -> bool:
        return self.tokens_file is not None or bool(self.tokens)


class RateRule(_Section):
    rps: float = Field(gt=0, description="requests per second, sustained")
    burst: int = Field(ge=1, description="requests at once, from a full bucket")


class RateLimitSettings(_Section):
    """Per-tenant token buckets; unset: no limit."""

    default: RateRule | None = Field(None, description="every tenant without a rule of its own")
    tenants: dict[str, RateRule] = Field(default_factory=dict, description="rules by tenant")

    @property
    def enabled(self) -> bool:
        return self.default is not None or bool(self.tenants)


class LimitsSettings(_Section):
    """Size limits on a request; anything larger is INVALID_ARGUMENT."""

    max_prompt_chars: int = Field(100_000, ge=1)
    max_messages: int = Field(256, ge=1)
    max_candidates: int = Field(64, ge=1)
    max_name_chars: int = Field(256, ge=1)
    max_embedding_dim: int = Field(4096, ge=1)
    max_batch: int = Field(256, ge=1)
    max_labels: int = Field(32, ge=0)
    max_label_chars: int = Field(256, ge=1)


class RouterSpec(_Section):
    """A named router: a strategy kind and its parameters."""

    name: str = Field(min_length=1, max_length=128)
    strategy: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class TracingSettings(_Section):
    """OpenTelemetry traces; off by default (then nothing is set up)."""

    enabled: bool = False
    exporter: Literal["otlp_grpc", "otlp_http", "console"] = Field(
        "otlp_grpc", description="OTLP over gRPC or HTTP/protobuf, or console (JSON per span)"
    )
    endpoint: str | None = Field(
        None,
        description="OTLP endpoint (gRPC http://host:4317, HTTP http://host:4318/v1/traces); "
        "unset: the standard OTEL_EXPORTER_OTLP_* variables, else the OTLP default",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="sent with every export (e.g. a backend's API key)"
    )
    timeout_s: float = Field(10.0, gt=0, le=60)
    sample_ratio: float = Field(
        1.0, ge=0, le=1, description="share of new traces sampled; a sampled caller's always is"
    )
    service_name: str = "routeiq-router"


class EventsSettings(_Section):
    """Decision events (every decision and outcome report) for the closed loop; see
    :mod:`router_service.telemetry.events`."""

    enabled: bool = True
    store: Literal["auto", "jsonl", "redis"] = Field(
        "auto", description="auto: the Redis stream when cache.redis.url is set, else JSONL"
    )
    path: Path = Path("var/events.jsonl")
    max_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="rotate the file past this")
    keep: int = Field(5, ge=0, description="rotated files kept (events.jsonl.1 … .N)")
    redis_stream: str = "routeiq:events"
    redis_maxlen: int = Field(1_000_000, ge=1000, description="XADD MAXLEN ~ (approximate)")
    buffer: int = Field(50_000, ge=1, description="events waiting to be written; past it, dropped")
    hash_key_file: Path = Field(
        Path("var/prompt-hash.key"),
        description="key of the prompt hash (hex; created when missing); share it across "
        "replicas so their hashes join",
    )


class TelemetrySettings(_Section):
    """Where outcome reports, shadow decisions and decision events go."""

    outcomes_path: Path = Path("var/outcomes.jsonl")
    shadow_path: Path = Path("var/shadow.jsonl")
    tracing: TracingSettings = TracingSettings()
    events: EventsSettings = EventsSettings()
    retain_prompts: bool = Field(
        False,
        description="write prompt text into decision events (to train on your own traffic); "
        "a privacy choice, off by default",
    )
    queue_size: int = Field(10_000, ge=1)


class EngineSettings(_Section):
    """Where CPU-heavy or blocking work runs, and how long it may take."""

    executor_threads: int = Field(2, ge=1, le=64)
    offload_timeout_ms: float = Field(
        50.0, gt=0, description="featurizers and blocking strategies; past it: fallback"
    )
    max_batch: int = Field(
        32, ge=1, le=1024, description="learned-router requests per inference job (micro-batch)"
    )
    max_batch_chars: int = Field(
        16_384, ge=1, description="characters of text per inference job; a longer text runs alone"
    )
    inline_below_us: float = Field(
        1000.0, ge=0, description="run inference jobs on the event loop while they take less"
    )
    router_timeouts_ms: dict[str, float] = Field(
        default_factory=dict,
        description="offload_timeout_ms per router name (e.g. a slow MiniLM bundle's)",
    )

    @field_validator("router_timeouts_ms")
    @classmethod
    def _positive_timeouts(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(name for name, ms in value.items() if not ms > 0)
        if bad:
            raise ValueError(f"timeouts must be > 0 ms, not for: {', '.join(bad)}")
        return value


class RedisSettings(_Section):
    """The shared tier. Off unless ``url`` is set (or ``ROUTEIQ_REDIS_URL``)."""

    url: str | None = Field(
        None, repr=False, description="redis://[user:password@]host:port/db, rediss:// for TLS"
    )
    cluster: bool = False
    username: str | None = None
    password: str | None = Field(None, repr=False)
    tls: bool = False
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    timeout_ms: float = Field(5.0, gt=0, description="per read; past it the read is a miss")
    write_timeout_ms: float = Field(
        50.0, gt=0, description="per background write (off the answer's path)"
    )
    connect_timeout_ms: float = Field(200.0, gt=0)
    max_connections: int = Field(64, ge=1)
    breaker_failures: int = Field(5, ge=1, description="consecutive failures that open the breaker")
    breaker_reset_s: float = Field(1.0, gt=0, description="open time before a half-open probe")
    max_pending_writes: int = Field(1000, ge=1, description="in-flight background writes")


class CacheSettings(_Section):
    """Two tiers: the in-process LRU (always on) in front of Redis (optional)."""

    lru_max_entries: int = Field(100_000, ge=0)
    lru_max_bytes: int = Field(64 * 1024 * 1024, ge=0)
    decision_ttl_s: float = Field(600.0, gt=0)
    feature_ttl_s: float = Field(86_400.0, gt=0)
    redis: RedisSettings = RedisSettings()


class MetricsSettings(_Section):
    """Prometheus /metrics over HTTP; off unless ``port`` is set."""

    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=0, le=65535)


class HealthSettings(_Section):
    """Per-model health learned from failed outcome reports, scoped by tenant."""

    failure_cooldown_s: float = Field(30.0, ge=0, description="how long a failure benches")
    max_entries: int = Field(
        10_000, ge=0, description="benches kept across tenants; the oldest go first"
    )


class ExtProcCandidate(_Section):
    """A model an ext_proc route may choose; prices in USD per million tokens when known."""

    name: str = Field(min_length=1, max_length=256)
    input_price_per_mtok: float | None = Field(None, ge=0)
    output_price_per_mtok: float | None = Field(None, ge=0)


class ExtProcPolicy(_Section):
    cost_weight: float | None = Field(None, ge=0, description="λ; unset = the router's default")
    min_quality: float | None = Field(None, ge=0, le=1)


class ExtProcMatch(_Section):
    """Which requests a route covers: every field that is set must match (none set = all)."""

    route: str | None = Field(None, description="x-routeiq-route gRPC metadata set by Envoy")
    path_prefix: str | None = Field(None, description="prefix of the request's :path")
    model: str | None = Field(None, description="the 'model' the client asked for (an alias)")


class ExtProcRoute(_Section):
    """One edge route: the candidates the engine chooses among, with which router and policy."""

    name: str = Field(min_length=1, max_length=128)
    match: ExtProcMatch = ExtProcMatch()
    candidates: list[ExtProcCandidate] = Field(min_length=1)
    router: str = Field("", description="empty: ext_proc.router, then default_router")
    policy: ExtProcPolicy = ExtProcPolicy()

    @field_validator("candidates", mode="before")
    @classmethod
    def _names_as_candidates(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value


class ExtProcSettings(_Section):
    """The Envoy ext_proc surface (``envoy.service.ext_proc.v3.ExternalProcessor``).

    ``routes`` are tried in order, the first match wins; a request no route matches passes
    through unchanged (Envoy's default route answers it)."""

    enabled: bool = True
    port: int | None = Field(None, ge=0, le=65535, description="None: the Router API's port")
    routes: list[ExtProcRoute] = Field(default_factory=list)
    on_malformed: Literal["pass", "reject"] = Field(
        "pass", description="a body that is not valid JSON of its API: pass it on, or answer 400"
    )
    router: str = Field("", description="router of routes that name none; empty: default_router")

    @model_validator(mode="after")
    def _check_routes(self) -> ExtProcSettings:
        names = [r.name for r in self.routes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"ext_proc route names must be unique, repeated: {', '.join(dupes)}")
        return self


class BundleSettings(_Section):
    """Bundles served from fixed directories, and what every bundle must pass to serve.

    Written as a list (``bundles: [DIR, ...]``) it means ``paths``."""

    paths: list[Path] = Field(
        default_factory=list, description="router bundle directories; each serves by its name"
    )
    require_signature: bool = Field(
        False, description="refuse bundles without a valid signature of one of public_keys"
    )
    public_keys: list[Path] = Field(
        default_factory=list, description="Ed25519 public keys (PEM) whose signatures are trusted"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: Any) -> Any:
        return {"paths": value} if isinstance(value, list | tuple) else value

    @model_validator(mode="after")
    def _keys_for_signatures(self) -> BundleSettings:
        if self.require_signature and not self.public_keys:
            raise ValueError("require_signature needs at least one of public_keys")
        return self


class S3Settings(_Section):
    """Object-storage access for an ``s3://`` registry; unset fields fall back to the standard
    AWS environment variables and files (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = Field(None, repr=False)
    timeout_s: float = Field(10.0, gt=0, description="connect and read timeout of each request")


class RegistrySettings(_Section):
    """A registry the service follows: ``SOURCE/<router>/<version>/`` bundles and
    ``SOURCE/<router>/rollout.json``; new versions and rollouts are served without a restart."""

    source: str | None = Field(
        None, description="a directory, or s3://bucket/prefix; unset: no registry"
    )
    poll_s: float = Field(5.0, ge=0.05, description="how often the source is listed")
    watch: bool = Field(True, description="a directory source: also react to filesystem events")
    debounce_ms: int = Field(200, ge=0, description="filesystem events: wait for quiet this long")
    cache_dir: Path | None = Field(
        None, description="s3 sources: where versions are downloaded (unset: a temporary dir)"
    )
    shadow_budget_ms: float = Field(
        50.0, gt=0, description="shadow mode: a challenger decision past this is abandoned"
    )
    shadow_max_in_flight: int = Field(
        64, ge=1, description="shadow decisions running at once; beyond it they are skipped"
    )
    s3: S3Settings = S3Settings()

    @field_validator("source")
    @classmethod
    def _source(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("s3://") and len(value) <= len("s3://"):
            raise ValueError("an s3 source needs a bucket: s3://bucket[/prefix]")
        return value or None


def _default_routers() -> list[RouterSpec]:
    return [RouterSpec(name=kind, strategy=kind) for kind in STATIC_KINDS]


class BudgetSettings(_Section):
    """A target the service holds on a learned router's live decisions by adjusting its λ
    (see :mod:`router_service.engine.budgets`). Exactly one of ``max_share``,
    ``max_cost_per_1k_requests`` and ``min_quality``."""

    router: str
    tenant: str | None = Field(
        None, description="only this tenant's requests; unset: every tenant, each on its own"
    )
    max_share: float | None = Field(
        None, gt=0, lt=1, description="the share of decisions going to any of ``models``"
    )
    models: list[str] = Field(default_factory=list, description="the models max_share counts")
    max_cost_per_1k_requests: float | None = Field(
        None, gt=0, description="USD per 1,000 decisions, from the candidates' prices"
    )
    tokens_per_request: float = Field(
        1000.0, gt=0, description="tokens a request costs, for max_cost_per_1k_requests"
    )
    min_quality: float | None = Field(
        None,
        gt=0,
        le=1,
        description="mean predicted quality of the chosen model over the best candidate's",
    )
    window: int = Field(1000, ge=50, description="recent decisions the target is held over")
    min_samples: int = Field(200, ge=10, description="fewer in the window: λ is not changed")
    update_every: int = Field(50, ge=1, description="decisions between two λ updates")
    lambda_min: float = Field(0.0, ge=0)
    lambda_max: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _one_target(self) -> BudgetSettings:
        targets = [self.max_share, self.max_cost_per_1k_requests, self.min_quality]
        if sum(t is not None for t in targets) != 1:
            raise ValueError(
                f"budget for {self.router!r}: give exactly one of max_share, "
                "max_cost_per_1k_requests, min_quality"
            )
        if self.max_share is not None and not self.models:
            raise ValueError(f"budget for {self.router!r}: max_share needs the models it counts")
        if self.lambda_min >= self.lambda_max:
            raise ValueError(f"budget for {self.router!r}: lambda_min must be below lambda_max")
        if self.min_samples > self.window:
            raise ValueError(f"budget for {self.router!r}: min_samples exceeds the window")
        return self


class Settings(BaseSettings):
    """Everything the service reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="ROUTEIQ_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    server: ServerSettings = ServerSettings()
    tls: TlsSettings = TlsSettings()
    auth: AuthSettings = AuthSettings()
    rate_limits: RateLimitSettings = RateLimitSettings()
    limits: LimitsSettings = LimitsSettings()
    engine: EngineSettings = EngineSettings()
    routers: list[RouterSpec] = Field(default_factory=_default_routers)
    bundles: BundleSettings = BundleSettings()
    registry: RegistrySettings = RegistrySettings()
    bundle_max_file_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    aliases: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="per bundle router: candidate name -> the bundle model it stands for",
    )
    default_router: str | None = Field(None, description="unset: the first bundle, else 'cheapest'")
    fallback_strategy: str = Field("fallback", description="static kind used when a router fails")
    strategies: dict[str, str] = Field(
        default_factory=dict, description="custom strategy kind -> 'package.module:Class'"
    )
    budgets: list[BudgetSettings] = Field(
        default_factory=list, description="targets held on live traffic by adjusting λ"
    )
    exploration: dict[str, float] = Field(
        default_factory=dict,
        description="learned router -> share of its decisions that pick uniformly among the "
        "usable candidates instead (0..1], so that retraining sees every model's outcomes; "
        "each decision event records its propensity",
    )
    telemetry: TelemetrySettings = TelemetrySettings()
    health: HealthSettings = HealthSettings()
    cache: CacheSettings = CacheSettings()
    metrics: MetricsSettings = MetricsSettings()
    ext_proc: ExtProcSettings = ExtProcSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field(
        "text", description="json: one object per line with request_id where there is one"
    )

    @model_validator(mode="after")
    def _check_routers(self) -> Settings:
        names = [r.name for r in self.routers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"router names must be unique, repeated: {', '.join(dupes)}")
        scopes = [(b.router, b.tenant) for b in self.budgets]
        if len(set(scopes)) != len(scopes):
            raise ValueError("two budgets for the same router and tenant")
        bad = {r: v for r, v in self.exploration.items() if not 0.0 < v <= 1.0}
        if bad:
            raise ValueError(f"exploration shares must be in (0, 1]: {bad}")
        return self

    def resolved_default(self, bundle_names: list[str]) -> str:
        """The default router's name, given the names of the loaded bundles."""
        names = [r.name for r in self.routers] + bundle_names
        if self.default_router is None:
            return bundle_names[0] if bundle_names else "cheapest"
        if self.default_router not in names:
            raise ConfigError(
                f"default_router {self.default_router!r} is not one of the routers: "
                + ", ".join(names)
            )
        return self.default_router


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from overrides, environment, YAML file and defaults.

    ``overrides`` are nested dicts (``server={"port": 0}``) merged over the other sources.
    Raises :class:`ConfigError` with pydantic's explanation when anything is invalid.
    """
    path = config_file or (
        Path(os.environ["ROUTEIQ_CONFIG"]) if "ROUTEIQ_CONFIG" in os.environ else None
    )
    if path is not None and not path.is_file():
        raise ConfigError(f"config file not found: {path}")

    class _FromFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if path is not None:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
            return tuple(sources)

    redis_url = os.environ.get("ROUTEIQ_REDIS_URL")
    if redis_url and "ROUTEIQ_CACHE__REDIS__URL" not in os.environ:
        cache = overrides.setdefault("cache", {})
        cache.setdefault("redis", {}).setdefault("url", redis_url)
    try:
        loaded = _FromFile(**overrides)
    except ValidationError as exc:
        where = f" in {path}" if path is not None else ""
        raise ConfigError(
            f"invalid configuration{where}:\n{field_problems(exc.errors())}"
        ) from None
    return Settings.model_validate(loaded.model_dump())
