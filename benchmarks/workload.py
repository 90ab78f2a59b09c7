"""What the load generator sends: prompts from the real datasets, candidates from a bundle's
manifest, and ghz input files.

Inputs are written as count-delimited binary ``RouteRequest`` messages (``ghz --binary-file``):
ghz sends them round-robin, one per call (request ``i`` gets message ``i mod n``). A JSON
``--data-file`` would work the same way, but ghz copies JSON call data into every report's
``options.data`` — megabytes of prompt text per raw result — and parses it per message; binary
input keeps the reports small, prompt-free, and the client cheaper.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from router_service.proto import pb

__all__ = [
    "CandidateSpec",
    "batch_requests",
    "candidates_from_bundle",
    "load_prompts",
    "route_requests",
    "write_delimited",
]


@dataclass(frozen=True)
class CandidateSpec:
    name: str
    price: float | None  # USD per 1M tokens (used for input and output), when known


def candidates_from_bundle(bundle: Path) -> list[CandidateSpec]:
    """Every model the bundle knows, priced with its costs when they are per 1M tokens."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    priced = manifest.get("cost_unit") == "usd_per_mtok"
    costs = manifest.get("model_costs", {})
    return [CandidateSpec(m, float(costs[m]) if priced else None) for m in manifest["models"]]


def _llmrouter_questions(root: Path) -> list[str]:
    folder = root / "dcrouter_preprocessed"
    rows: list[dict[str, object]] = []
    for name in ("test.json", "train.json"):
        if (folder / name).is_file():
            rows += json.loads((folder / name).read_text(encoding="utf-8"))
    return [str(r["question"]) for r in rows if r.get("question")]


def _mmlu_prompts(root: Path) -> list[str]:
    prompts: list[str] = []
    for path in sorted((root / "mmlu" / "responses").glob("mmlu_*.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            prompts += [row["prompt"] for row in csv.DictReader(fh) if row.get("prompt")]
    return prompts


def _wide_queries(path: Path) -> list[str]:
    from converters.datasets import load

    return list(load(path, "wide").queries)


def load_prompts(sources: Sequence[Path], limit: int, seed: int = 0) -> list[str]:
    """Up to ``limit`` distinct prompts, shuffled: LLMRouter questions (a ``llmrouter`` dir),
    RouteLLM MMLU prompts (a ``routellm`` dir) or the queries of a ``wide`` CSV/JSONL file."""
    found: list[str] = []
    for src in sources:
        if src.is_file():
            found += _wide_queries(src)
        elif (src / "dcrouter_preprocessed").is_dir():
            found += _llmrouter_questions(src)
        elif (src / "mmlu").is_dir():
            found += _mmlu_prompts(src)
    unique = list(dict.fromkeys(p.strip() for p in found if p.strip()))
    random.Random(seed).shuffle(unique)
    if not unique:
        raise ValueError(f"no prompts found in {', '.join(map(str, sources))}")
    return unique[:limit]


def _candidates(specs: Sequence[CandidateSpec]) -> list[pb.Candidate]:
    out = []
    for c in specs:
        if c.price is None:
            out.append(pb.Candidate(name=c.name))
            continue
        price = c.price
        out.append(
            pb.Candidate(name=c.name, input_price_per_mtok=price, output_price_per_mtok=price)
        )
    return out


def route_requests(
    prompts: Iterable[str], specs: Sequence[CandidateSpec], router: str
) -> list[pb.RouteRequest]:
    cands = _candidates(specs)
    return [pb.RouteRequest(prompt=p, candidates=cands, router=router) for p in prompts]


def batch_requests(
    prompts: Sequence[str], specs: Sequence[CandidateSpec], router: str, size: int
) -> list[pb.RouteBatchRequest]:
    """Consecutive groups of ``size`` prompts, one ``RouteBatchRequest`` each."""
    singles = route_requests(prompts, specs, router)
    return [
        pb.RouteBatchRequest(requests=singles[i : i + size])
        for i in range(0, len(singles) - size + 1, size)
    ]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def write_delimited(path: Path, messages: Sequence[pb.RouteRequest | pb.RouteBatchRequest]) -> Path:
    """Write ``messages`` as varint-length-prefixed binary protobufs (ghz ``-B``)."""
    if not messages:
        raise ValueError(f"{path.name}: no messages to write")
    with path.open("wb") as fh:
        for msg in messages:
            blob = msg.SerializeToString()
            fh.write(_varint(len(blob)))
            fh.write(blob)
    return path
