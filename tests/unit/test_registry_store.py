"""Registry storage, signatures and rollout files, without a server."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from converters.cli import main as bundle_cli
from converters.registry_ops import promote, publish, rollback, set_rollout
from router_service.bundles.rollout import Rollout, in_share
from router_service.bundles.signing import (
    SIGNATURE_FILE,
    TrustedKeys,
    generate_keypair,
    sign_bundle,
)
from router_service.bundles.store import DirStore
from router_service.bundles.verify import verify_bundle
from router_service.config import load_settings
from router_service.errors import BundleError, ConfigError
from tests.support.bundles import embedding_bundle


def test_publish_numbers_versions_and_hides_unfinished_ones(tmp_path: Path) -> None:
    store = DirStore(tmp_path / "reg")
    bundle = embedding_bundle(tmp_path / "b")
    assert [publish(store, bundle).version for _ in range(3)] == [1, 2, 3]
    (store.root / "emb-linear" / ".tmp-crashed").mkdir()  # a publisher that died mid-copy
    (store.root / "emb-linear" / "4").mkdir()  # a version directory without its manifest
    listing = store.listing()["emb-linear"]
    assert sorted(listing.versions) == [1, 2, 3]
    assert listing.newest == 3


def test_concurrent_publishers_get_distinct_versions(tmp_path: Path) -> None:
    store = DirStore(tmp_path / "reg")
    bundle = embedding_bundle(tmp_path / "b")
    got: list[int] = []
    threads = [
        threading.Thread(target=lambda: got.append(store.publish("emb-linear", bundle)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 9))


def test_publish_refuses_an_invalid_bundle(tmp_path: Path) -> None:
    bundle = embedding_bundle(tmp_path / "b")
    (bundle / "router.onnx").write_bytes(b"not onnx")
    with pytest.raises(BundleError, match="does not match its sha256"):
        publish(DirStore(tmp_path / "reg"), bundle)
    assert not (tmp_path / "reg").exists()


def test_signatures_verify_and_refuse(tmp_path: Path) -> None:
    key, other = tmp_path / "k", tmp_path / "o"
    kid = generate_keypair(key)
    generate_keypair(other)
    with pytest.raises(FileExistsError):
        generate_keypair(key)
    assert key.stat().st_mode & 0o077 == 0
    trusted = TrustedKeys.from_files([Path(f"{key}.pub")], required=True)
    bundle = embedding_bundle(tmp_path / "b")
    with pytest.raises(BundleError, match="unsigned"):
        verify_bundle(bundle, 1 << 20, trusted)
    assert verify_bundle(bundle, 1 << 20, TrustedKeys()).signed_by == ""
    assert sign_bundle(bundle, key) == kid
    assert verify_bundle(bundle, 1 << 20, trusted).signed_by == kid
    manifest = bundle / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["default_cost_weight"] = 9.0  # a changed manifest no longer matches its signature
    manifest.write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=f"signature of key {kid} does not match"):
        verify_bundle(bundle, 1 << 20, trusted)
    sign_bundle(bundle, other)
    with pytest.raises(BundleError, match=r"not in bundles\.public_keys"):
        verify_bundle(bundle, 1 << 20, trusted)
    (bundle / SIGNATURE_FILE).write_text("{")
    with pytest.raises(BundleError, match=r"signature\.json is invalid"):
        verify_bundle(bundle, 1 << 20, trusted)


def test_signature_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="require_signature needs at least one"):
        load_settings(bundles={"require_signature": True})
    (tmp_path / "bad.pub").write_text("not a key")
    with pytest.raises(ConfigError, match="cannot read"):
        TrustedKeys.from_files([tmp_path / "bad.pub"], required=True)
    # the short form stays: a list of bundle directories
    assert load_settings(bundles=["a", "b"]).bundles.paths == [Path("a"), Path("b")]


def test_rollout_file_rules() -> None:
    with pytest.raises(ValidationError, match="needs a share above 0"):
        Rollout(champion=1, challenger=2)
    with pytest.raises(ValidationError, match="cannot be the champion"):
        Rollout(champion=2, challenger=2, share=0.1)
    share = sum(in_share("r", f"id-{n}", 0.25) for n in range(20_000)) / 20_000
    assert 0.24 < share < 0.26
    assert in_share("r", "x", 0.5) == in_share("r", "x", 0.5)
    assert not in_share("r", "x", 0.0) and in_share("r", "x", 1.0)


def test_promote_rollback_and_rollout_edit_the_rollout_file(tmp_path: Path) -> None:
    store = DirStore(tmp_path / "reg")
    for v in "abc":
        publish(store, embedding_bundle(tmp_path / v, version=v))
    assert rollback(store, "emb-linear") == Rollout(champion=2)
    assert rollback(store, "emb-linear") == Rollout(champion=1)
    with pytest.raises(BundleError, match="no version below 1"):
        rollback(store, "emb-linear")
    canary = set_rollout(store, "emb-linear", challenger=3, share=0.2)
    assert (canary.champion, canary.challenger, canary.share) == (1, 3, 0.2)
    assert promote(store, "emb-linear") == Rollout(champion=3)
    with pytest.raises(BundleError, match="no version 9"):
        promote(store, "emb-linear", 9)
    assert promote(store, "emb-linear", newest=True) == Rollout()
    assert store.listing()["emb-linear"].rollout == Rollout()
    (store.root / "emb-linear" / "rollout.json").write_text('{"champion": "x"}')
    assert "invalid" in store.listing()["emb-linear"].rollout_error


def test_cli_publish_list_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg = str(tmp_path / "reg")
    bundle = embedding_bundle(tmp_path / "b")
    assert bundle_cli(["keygen", str(tmp_path / "key")]) == 0
    assert (
        bundle_cli(["publish", str(bundle), "--registry", reg, "--sign", str(tmp_path / "key")])
        == 0
    )
    assert bundle_cli(["publish", str(bundle), "--registry", reg, "--canary", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "version 1" in out and "signed by" in out
    assert "champion 1, challenger 2 on 10.0% by request_id" in out
    assert (bundle / SIGNATURE_FILE).exists() is False  # the source bundle is not modified
    assert bundle_cli(["list", "--registry", reg, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["emb-linear"]["versions"] == [1, 2]
    assert bundle_cli(["promote", "nope", "--registry", reg]) == 2
    assert "no versions of router 'nope'" in capsys.readouterr().err
    assert bundle_cli(["rollout", "emb-linear", "--challenger", "2", "--registry", reg]) == 2
    assert "--share" in capsys.readouterr().err
