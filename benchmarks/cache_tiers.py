"""Cache benchmark: decision latency for an LRU hit, a Redis hit and a miss, and the hit ratio
of a realistic prompt stream — through the real engine, a real TF-IDF bundle and a real Redis.

    .venv/bin/python benchmarks/cache_tiers.py --bundle DIR [--n 2000] [--out FILE.json]

It starts its own redis-server on a free port (stopped by pid at the end). Numbers are per
decision inside the service (no network hop), medians and p99 in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.procs import RedisProc  # noqa: E402
from converters.datasets import SHIPPED_DATA  # noqa: E402
from router_service.bundles.base import RouterTable  # noqa: E402
from router_service.bundles.loader import load_bundle  # noqa: E402
from router_service.config import LimitsSettings, load_settings  # noqa: E402
from router_service.domain import Candidate, RouteInput, Source  # noqa: E402
from router_service.engine.engine import DecisionEngine  # noqa: E402
from router_service.engine.health import ModelHealth  # noqa: E402
from router_service.metrics import Metrics  # noqa: E402
from router_service.server import build_cache  # noqa: E402
from router_service.strategies.static import Fallback  # noqa: E402


def _engine(bundle: Path, redis_url: str | None, lru_entries: int) -> tuple[DecisionEngine, Any]:
    settings = load_settings(
        cache={"lru_max_entries": lru_entries, "redis": {"url": redis_url, "timeout_ms": 20}}
    )
    cache = build_cache(settings, Metrics())
    engine = DecisionEngine(LimitsSettings(), Fallback(), ModelHealth(30), cache=cache)
    router = load_bundle(bundle, 1 << 30)
    engine.install(RouterTable({router.name: router}, default=router.name))
    return engine, cache


def _prompts(n: int) -> list[str]:
    data = SHIPPED_DATA / "llmrouter" / "dcrouter_preprocessed" / "test.json"
    return [row["question"] for row in json.loads(data.read_text())][:n]


async def _time(
    engine: DecisionEngine, cands: tuple[Candidate, ...], prompts: list[str], want: Source | None
) -> list[float]:
    out = []
    for i, prompt in enumerate(prompts):
        t0 = time.perf_counter()
        d = await engine.route(RouteInput(str(i), cands, prompt=prompt))
        out.append((time.perf_counter() - t0) * 1e6)
        if want is not None and d.source is not want:
            raise SystemExit(f"expected {want.name}, got {d.source.name}")
    return out


def _stats(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"p50_us": statistics.median(xs), "p99_us": xs[int(len(xs) * 0.99) - 1], "n": len(xs)}


async def run(bundle: Path, n: int) -> dict[str, Any]:
    log_dir = Path(tempfile.mkdtemp(prefix="routeiq-cache-tiers-"))
    redis_proc = RedisProc(log_dir)
    url = redis_proc.url
    try:
        models = load_bundle(bundle, 1 << 30).models
        cands = tuple(Candidate(m) for m in models)
        prompts = _prompts(n)
        miss_engine, miss_cache = _engine(bundle, None, 0)
        print(f"miss: {len(prompts)} unique prompts, no cache", file=sys.stderr)
        miss = await _time(miss_engine, cands, prompts, Source.MODEL)
        warm_engine, warm_cache = _engine(bundle, url, 100_000)
        await _time(warm_engine, cands, prompts, None)  # fills LRU and Redis
        await warm_cache.drain(5.0)
        print("LRU hit", file=sys.stderr)
        lru = await _time(warm_engine, cands, prompts, Source.CACHE)
        redis_engine, redis_cache = _engine(bundle, url, 0)  # a replica without an LRU
        print("Redis hit", file=sys.stderr)
        redis_hit = await _time(redis_engine, cands, prompts, Source.CACHE)
        # a stream where prompts repeat with a Zipf-like skew, like real traffic
        rng = random.Random(0)
        stream = [prompts[min(int(rng.paretovariate(1.2)) - 1, len(prompts) - 1)] for _ in range(n)]
        fresh_engine, fresh_cache = _engine(bundle, None, 100_000)
        sources = [
            (await fresh_engine.route(RouteInput("s", cands, prompt=p))).source for p in stream
        ]
        for cache in (miss_cache, warm_cache, redis_cache, fresh_cache):
            await cache.close()
    finally:
        redis_proc.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
    return {
        "bundle": bundle.name,
        "load_avg_1m": os.getloadavg()[0],
        "lru_hit": _stats(lru),
        "redis_hit": _stats(redis_hit),
        "miss": _stats(miss),
        "zipf_stream_hit_ratio": sum(s is Source.CACHE for s in sources) / len(sources),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = asyncio.run(run(args.bundle, args.n))
    print(f"{'path':<12}{'p50 µs':>10}{'p99 µs':>10}")
    for key in ("lru_hit", "redis_hit", "miss"):
        print(f"{key:<12}{result[key]['p50_us']:>10.0f}{result[key]['p99_us']:>10.0f}")
    print(
        f"hit ratio of a Zipf-skewed stream of {args.n}: {result['zipf_stream_hit_ratio']:.2f}"
        f" (load avg {result['load_avg_1m']:.1f})"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
