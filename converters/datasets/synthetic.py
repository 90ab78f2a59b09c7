"""A small generated routing dataset in the wide format, for machines without real data.

Three models with different strengths and prices answer prompts of four tasks built from
templates: ``small-fast`` (cheap; good at trivia, weak at math and code), ``coder`` (mid-price;
good at code), ``frontier`` (expensive; good at everything). Quality is a per-task success
probability drawn as 0/1 with a fixed seed; cost is the model's price per query. It exists so
that ``make run`` can build and serve a learned router anywhere; it says nothing about real
models.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

__all__ = ["MODELS", "write_synthetic"]

MODELS = {"small-fast": 0.0002, "coder": 0.002, "frontier": 0.02}  # USD per query
_SKILL = {
    "trivia": {"small-fast": 0.85, "coder": 0.8, "frontier": 0.95},
    "math": {"small-fast": 0.2, "coder": 0.55, "frontier": 0.9},
    "code": {"small-fast": 0.25, "coder": 0.85, "frontier": 0.9},
    "writing": {"small-fast": 0.6, "coder": 0.5, "frontier": 0.85},
}
_TEMPLATES = {
    "trivia": [
        "What is the capital of {x}?",
        "Who wrote the novel about {x}?",
        "In which year did {x} happen?",
        "Name the largest city in {x}.",
    ],
    "math": [
        "Solve for x: {n}x + {m} = {k}.",
        "What is the integral of x^{n} from 0 to {m}?",
        "Compute {n} * {m} + {k} and show each step.",
        "Prove that {n} is not prime.",
    ],
    "code": [
        "Write a Python function that sorts {x} by length.",
        "Fix the bug in this loop over {x}: for i in range(len(a)): a[i+1]",
        "Implement a binary search over {x} in Rust.",
        "Explain this SQL join on {x}.",
    ],
    "writing": [
        "Write a short poem about {x}.",
        "Draft a polite email declining {x}.",
        "Summarise the story of {x} in three sentences.",
        "Write a product description for {x}.",
    ],
}
_WORDS = [
    "France",
    "the ocean",
    "autumn",
    "Peru",
    "a lighthouse",
    "the moon landing",
    "customer records",
    "a list of strings",
    "Japan",
    "the printing press",
    "coffee",
    "a mountain village",
    "user accounts",
    "Kenya",
    "a red bicycle",
    "quantum physics",
]


def write_synthetic(path: Path, n: int = 2000, seed: int = 7) -> Path:
    """Write ``n`` rows (80 % train, 20 % test) to ``path`` (CSV, wide format)."""
    rng = random.Random(seed)  # noqa: S311 - data generation, not security
    header = ["id", "query", "split", "task"]
    header += [f"{m}__quality" for m in MODELS] + [f"{m}__cost_usd" for m in MODELS]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for i in range(n):
            task = rng.choice(list(_TEMPLATES))
            query = rng.choice(_TEMPLATES[task]).format(
                x=rng.choice(_WORDS),
                n=rng.randint(2, 99),
                m=rng.randint(2, 99),
                k=rng.randint(2, 999),
            )
            quality = [float(rng.random() < _SKILL[task][m]) for m in MODELS]
            split = "test" if i % 5 == 0 else "train"
            writer.writerow([i, query, split, task, *quality, *MODELS.values()])
    return path
