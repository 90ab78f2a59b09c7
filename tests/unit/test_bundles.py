"""Bundle verification refuses anything that is not exactly what the manifest promised."""

import json
from pathlib import Path

import numpy as np
import pytest

from router_service.bundles.loader import load_bundle
from router_service.bundles.verify import verify_bundle
from router_service.domain import Candidate, Policy, RouteInput
from router_service.engine.health import ModelHealth
from router_service.errors import BundleError
from tests.support.bundles import MODELS, embedding_bundle

CAP = 10 * 1024 * 1024


def emb(i: int, dim: int = 4) -> np.ndarray:
    v = np.zeros((1, dim), dtype=np.float32)
    v[0, i] = 1.0
    return v


def test_valid_bundle_loads_and_scores(tmp_path: Path) -> None:
    router = load_bundle(embedding_bundle(tmp_path / "b"), CAP)
    assert (router.name, router.kind, router.version) == ("emb-linear", "linear", "v1")
    assert router.models == tuple(MODELS)
    assert len(router.sha256) == 64
    cands = tuple(Candidate(m) for m in MODELS)
    for i, model in enumerate(MODELS):
        choice = router.strategy.choose(
            RouteInput("r", cands, embedding=(0.0,) * 4, policy=Policy(cost_weight=0.0)),
            emb(i),
            ModelHealth(1).view(""),
        )
        assert choice.model == model


def test_cost_weight_and_min_quality_policies(tmp_path: Path) -> None:
    router = load_bundle(embedding_bundle(tmp_path / "b"), CAP)
    cands = tuple(Candidate(m) for m in MODELS)
    features = emb(2)  # "large" predicted best (0.99), the others 0.27
    health = ModelHealth(1).view("")

    def pick(policy: Policy, c: tuple[Candidate, ...] = cands) -> str:
        req = RouteInput("r", c, embedding=(0.0,) * 4, policy=policy)
        return router.strategy.choose(req, features, health).model

    assert pick(Policy(cost_weight=0.0)) == "large"
    assert pick(Policy(cost_weight=1.0)) == "small"  # 0.27-0.1 beats 0.99-2.0
    assert pick(Policy(min_quality=0.5)) == "large"
    assert pick(Policy(min_quality=0.2)) == "small"
    priced = (
        Candidate("small", 5.0, 5.0),
        Candidate("medium", 6.0, 6.0),
        Candidate("large", 0.1, 0.1),
    )
    assert pick(Policy(min_quality=0.2), priced) == "large"  # request prices beat the bundle's


def test_unknown_candidates_are_not_scored(tmp_path: Path) -> None:
    router = load_bundle(embedding_bundle(tmp_path / "b"), CAP)
    req = RouteInput("r", (Candidate("other"), Candidate("small")), embedding=(0.0,) * 4)
    choice = router.strategy.choose(req, emb(2), ModelHealth(1).view(""))
    assert choice.model == "small"
    assert choice.scores[0].quality is None


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    path = embedding_bundle(tmp_path / "b")
    blob = bytearray((path / "router.onnx").read_bytes())
    blob[-5] ^= 0xFF
    (path / "router.onnx").write_bytes(bytes(blob))
    with pytest.raises(BundleError, match=r"router\.onnx does not match its sha256"):
        verify_bundle(path, CAP)


def test_tampered_manifest_is_refused(tmp_path: Path) -> None:
    path = embedding_bundle(tmp_path / "b")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["router.onnx"]["sha256"] = "0" * 64
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="does not match its sha256"):
        verify_bundle(path, CAP)


def test_disallowed_operator_is_refused(tmp_path: Path) -> None:
    path = embedding_bundle(tmp_path / "b", extra_op="com.microsoft:FusedGemm")
    with pytest.raises(
        BundleError, match=r"operators outside the allowed domains: com\.microsoft:FusedGemm"
    ):
        verify_bundle(path, CAP)


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    path = embedding_bundle(tmp_path / "b")
    size = (path / "router.onnx").stat().st_size
    with pytest.raises(BundleError, match=rf"router\.onnx is {size} bytes, over the cap of 100"):
        verify_bundle(path, 100)


def test_missing_file_and_bad_manifest_are_refused(tmp_path: Path) -> None:
    path = embedding_bundle(tmp_path / "b")
    (path / "router.onnx").unlink()
    with pytest.raises(BundleError, match=r"router\.onnx is listed in the manifest but missing"):
        verify_bundle(path, CAP)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "manifest.json").write_text('{"name": "x"}')
    with pytest.raises(BundleError, match=r"invalid manifest\.json"):
        verify_bundle(tmp_path / "c", CAP)
    with pytest.raises(BundleError, match=r"no manifest\.json"):
        verify_bundle(tmp_path / "nothing", CAP)


def test_manifest_rejects_path_traversal(tmp_path: Path) -> None:
    path = embedding_bundle(tmp_path / "b")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["../evil.onnx"] = manifest["files"]["router.onnx"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="is not a plain file in the bundle"):
        verify_bundle(path, CAP)
