"""In-process baselines, measured in the same run as the load scenarios.

* "LLMRouter's way": a scikit-learn ``KNeighborsClassifier`` (labels: each training query's
  best model, as LLMRouter's ``KNNRouter`` trains it) over the same TF-IDF/SVD features,
  pickled to disk. ``per-call load`` unpickles it on every decision, as LLMRouter's
  ``route_single`` does (``load_model(...)`` then ``predict``); ``loaded once`` keeps it. Both
  featurize with the in-memory scikit-learn pipeline (LLMRouter keeps its encoder loaded).
  Pickle is used here only to reproduce that baseline; the service never loads one.
* scikit-learn vs ONNX Runtime per decision, one row at a time, on the same prompts: the
  featurizer (TF-IDF/SVD pipeline vs the bundle's ``featurizer.onnx``), the bundle's router
  (the same estimator refitted on the same features vs its ``router.onnx``), the two together,
  and two common router heads (logistic regression ``predict_proba``, MLP ``predict``). ONNX
  sessions are made by :func:`router_service.onnx_session.make_session` (one intra-op thread),
  as the service makes them. Calls alternate between the two sides so both see the same noise.

scikit-learn runs with one BLAS/OpenMP thread (``threadpoolctl``), like the ONNX sessions: with
its default (one thread per core) a single-row kNN ``predict`` took 70-90 ms instead of ~2.5 ms
on a busy 2-core machine, from OpenMP threads contending with other processes.
"""

from __future__ import annotations

import json
import pickle  # noqa: TID251 - the LLMRouter baseline loads a pickle, as LLMRouter does
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from converters.datasets import RoutingDataset
from converters.features.tfidf import TfidfConfig, TfidfFeaturizer, fit_tfidf
from router_service.featurizers.onnx_text import OnnxTextFeaturizer
from router_service.onnx_session import make_session

__all__ = ["Timing", "llmrouter_baseline", "onnx_vs_sklearn"]

F32 = npt.NDArray[np.float32]
Call = Callable[[str], object]  # one decision step for a prompt
Head = Callable[[F32], object]  # a router head on one feature row


@dataclass(frozen=True)
class Timing:
    """Per-call wall time in microseconds over ``n`` calls."""

    n: int
    p50_us: float
    p90_us: float
    mean_us: float


def _timing(samples_ns: Sequence[int]) -> Timing:
    us = sorted(s / 1000 for s in samples_ns)
    return Timing(len(us), us[len(us) // 2], us[int(len(us) * 0.9)], statistics.fmean(us))


def _interleaved(calls: dict[str, Call], prompts: Sequence[str], rounds: int) -> dict[str, Timing]:
    """Time each call once per prompt per round, rotating which side goes first."""
    with threadpool_limits(limits=1):
        return _interleaved_1thread(calls, prompts, rounds)


def _interleaved_1thread(
    calls: dict[str, Call], prompts: Sequence[str], rounds: int
) -> dict[str, Timing]:
    names = list(calls)
    for name in names:  # warm-up: caches, lazy initialisation
        for p in prompts[:20]:
            calls[name](p)
    samples: dict[str, list[int]] = {n: [] for n in names}
    for r in range(rounds):
        for i, prompt in enumerate(prompts):
            shift = (r + i) % len(names)
            for name in names[shift:] + names[:shift]:
                t0 = time.perf_counter_ns()
                calls[name](prompt)
                samples[name].append(time.perf_counter_ns() - t0)
    return {n: _timing(s) for n, s in samples.items()}


def _svd_dims(bundle: Path) -> int:
    return int(json.loads((bundle / "manifest.json").read_text())["featurizer"]["dim"])


def _fit_features(train: RoutingDataset, bundle: Path) -> TfidfFeaturizer:
    """The scikit-learn pipeline the bundle's TF-IDF featurizer was exported from (same data,
    same settings, same seed: the same fitted pipeline)."""
    return fit_tfidf(train.queries, TfidfConfig(svd_dims=_svd_dims(bundle)))


def llmrouter_baseline(
    ds: RoutingDataset,
    bundle: Path,
    work: Path,
    prompts: Sequence[str],
    rounds: int,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Per-decision time of the LLMRouter-style pickled kNN: loaded per call, and once."""
    from sklearn.neighbors import KNeighborsClassifier

    train = ds.train()
    featurizer = _fit_features(train, bundle)
    x = featurizer.transform(train.queries)
    labels = np.asarray(ds.models)[np.argmax(train.quality, axis=1)]  # first best, like idxmax
    knn = KNeighborsClassifier(n_neighbors=min(5, len(x))).fit(x, labels)
    path = work / "knn_model.pkl"
    with path.open("wb") as fh:
        pickle.dump(knn, fh)
    log(f"  LLMRouter-style kNN: {len(x)} rows x {x.shape[1]} features, pickle {_mb(path)} MB")

    def per_call(prompt: str) -> object:
        with path.open("rb") as fh:
            # the baseline's own file, unpickled per call as LLMRouter's route_single does
            model = pickle.load(fh)
        return model.predict(featurizer.transform([prompt]))[0]

    def once(prompt: str) -> object:
        return knn.predict(featurizer.transform([prompt]))[0]

    times = _interleaved({"per_call_load": per_call, "loaded_once": once}, prompts, rounds)
    return {"pickle_mb": _mb(path), "rows": len(x), **{k: v.__dict__ for k, v in times.items()}}


def _mb(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 2)


class _OnnxRouter:
    def __init__(self, blob: bytes) -> None:
        self.session = make_session(blob)
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name

    def __call__(self, x: F32) -> object:
        return self.session.run([self.output], {self.input: x})[0]


def _on_row(head: Head, rows: dict[str, F32]) -> Call:
    """``head`` applied to the prompt's precomputed feature row."""
    return lambda prompt: head(rows[prompt])


def _heads(x: F32, y: npt.NDArray[np.float64]) -> dict[str, tuple[Head, Head]]:
    """(sklearn, onnx) callables for a logistic-regression and an MLP router head."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    from converters.routers import to_onnx, train_router

    labels = np.argmax(y, axis=1)
    logistic = LogisticRegression(max_iter=500).fit(x, labels)
    spec = [("features", FloatTensorType([None, x.shape[1]]))]
    options = {id(logistic): {"zipmap": False}}
    lr_onnx = convert_sklearn(logistic, initial_types=spec, options=options, target_opset=17)
    lr_sess = make_session(lr_onnx.SerializeToString())
    lr_out = lr_sess.get_outputs()[1].name  # probabilities
    mlp = train_router("mlp", x, y, max_iter=50)
    mlp_onnx = _OnnxRouter(to_onnx(mlp, x.shape[1]).SerializeToString())
    return {
        "logistic predict_proba": (
            logistic.predict_proba,
            lambda r: lr_sess.run([lr_out], {"features": r})[0],
        ),
        "mlp predict": (mlp.estimator.predict, mlp_onnx),
    }


def onnx_vs_sklearn(
    ds: RoutingDataset,
    bundle: Path,
    prompts: Sequence[str],
    rounds: int,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """Per-decision medians (µs) of scikit-learn vs ONNX Runtime, and their ratio."""
    from converters.routers import train_router

    manifest = json.loads((bundle / "manifest.json").read_text())
    train = ds.train()
    sk_feat = _fit_features(train, bundle)
    feat_blob = (bundle / manifest["featurizer"]["file"]).read_bytes()
    ox_feat = OnnxTextFeaturizer("tfidf", feat_blob, "bench", int(manifest["featurizer"]["dim"]))
    x = np.concatenate(
        [ox_feat.featurize(train.queries[i : i + 256]) for i in range(0, len(train.queries), 256)]
    )
    y = train.quality.astype(np.float64)
    params = manifest.get("provenance", {}).get("router_params", {})
    log(f"  refit {manifest['router_kind']} on {x.shape} for the scikit-learn side")
    sk_router = train_router(manifest["router_kind"], x, y, **params)
    ox_router = _OnnxRouter((bundle / manifest["router"]["file"]).read_bytes())
    rows = {p: ox_feat.featurize([p]) for p in prompts}
    pairs: dict[str, tuple[Call, Call]] = {
        "featurizer (TF-IDF/SVD)": (
            lambda p: sk_feat.transform([p]),
            lambda p: ox_feat.featurize([p]),
        ),
        f"router ({manifest['router_kind']})": (
            lambda p: sk_router.predict(rows[p]),
            lambda p: ox_router(rows[p]),
        ),
        "decision (featurize + router)": (
            lambda p: sk_router.predict(sk_feat.transform([p])),
            lambda p: ox_router(ox_feat.featurize([p])),
        ),
    }
    log("  train logistic-regression and MLP heads")
    for name, (sk_head, ox_head) in _heads(x, y).items():
        pairs[name] = (_on_row(sk_head, rows), _on_row(ox_head, rows))
    out: dict[str, dict[str, Any]] = {}
    for name, (sk, ox) in pairs.items():
        t = _interleaved({"sklearn": sk, "onnx": ox}, prompts, rounds)
        out[name] = {
            "sklearn": t["sklearn"].__dict__,
            "onnx": t["onnx"].__dict__,
            "speedup": t["sklearn"].p50_us / t["onnx"].p50_us,
        }
        log(
            f"  {name:<30} sklearn {t['sklearn'].p50_us:9.1f} µs  onnx {t['onnx'].p50_us:8.1f} µs"
            f"  x{out[name]['speedup']:.1f}"
        )
    return out
