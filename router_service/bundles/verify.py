"""Bundle verification: nothing serves before every check passes.

Checks, in order: manifest size and schema; every listed file present, within the size cap, of
the recorded size and sha256; every ONNX graph passes ``onnx.checker``, carries no external
data, and uses only operators of the standard and ``ai.onnx.ml`` domains, plus two
``com.microsoft`` operators listed by name (:data:`ALLOWED_EXTRA_OPS`); and, when public keys are
configured, the Ed25519 signature over the manifest (:mod:`router_service.bundles.signing`).
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx
from pydantic import ValidationError

from router_service.bundles.manifest import Manifest
from router_service.bundles.signing import TrustedKeys, verify_signature
from router_service.errors import BundleError, field_problems

__all__ = [
    "ALLOWED_DOMAINS",
    "ALLOWED_EXTRA_OPS",
    "IsolatedChecker",
    "VerifiedBundle",
    "graph_ops",
    "verify_bundle",
]

ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
# onnxruntime contrib ops allowed by name: the TF-IDF graph tokenizes with Tokenizer, and the
# KNN router computes distances with CDist (skl2onnx "cdist" option, 4-5x faster).
ALLOWED_EXTRA_OPS = frozenset({("com.microsoft", "Tokenizer"), ("com.microsoft", "CDist")})
MAX_MANIFEST_BYTES = 1024 * 1024


@dataclass(frozen=True)
class VerifiedBundle:
    path: Path
    manifest: Manifest
    sha256: str
    blobs: dict[str, bytes]
    signed_by: str = ""
    """The key id whose signature was verified ("" when unsigned or no keys are configured)."""


def graph_ops(graph: onnx.GraphProto) -> Iterator[tuple[str, str]]:
    """(domain, op_type) of every node, subgraphs (If/Loop/Scan bodies) included."""
    for node in graph.node:
        yield node.domain, node.op_type
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from graph_ops(attr.g)
            for sub in attr.graphs:
                yield from graph_ops(sub)


def _check_onnx(name: str, blob: bytes) -> None:
    try:
        model = onnx.load_model_from_string(blob)
    except Exception as exc:
        raise BundleError(f"{name}: not an ONNX model ({type(exc).__name__})") from None
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise BundleError(f"{name}: external tensor data is not allowed ({tensor.name})")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).splitlines()[0][:200]
        raise BundleError(f"{name}: onnx.checker failed: {first}") from None
    refused = sorted(
        {
            f"{d or 'ai.onnx'}:{op}"
            for d, op in graph_ops(model.graph)
            if d not in ALLOWED_DOMAINS and (d, op) not in ALLOWED_EXTRA_OPS
        }
    )
    if refused:
        raise BundleError(f"{name}: operators outside the allowed domains: {', '.join(refused)}")


def _read_manifest(path: Path) -> tuple[Manifest, bytes]:
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise BundleError(f"{path}: no manifest.json (is this a bundle directory?)")
    raw = manifest_path.read_bytes()
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path}: manifest.json is over {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = Manifest.model_validate(json.loads(raw))
    except ValidationError as exc:
        raise BundleError(
            f"{path}: invalid manifest.json:\n{field_problems(exc.errors())}"
        ) from None
    except ValueError as exc:
        raise BundleError(f"{path}: invalid manifest.json: {exc}") from None
    return manifest, raw


def verify_bundle(
    path: Path,
    max_file_bytes: int,
    trusted: TrustedKeys | None = None,
    *,
    graphs_checked: str | None = None,
) -> VerifiedBundle:
    """Verify the bundle in directory ``path``; raise :class:`BundleError` saying what failed.

    Files are read once, hashed, checked, and handed on as bytes so that what is served is
    exactly what was verified. ``graphs_checked``: the manifest sha256 of a bundle whose ONNX
    graphs another process has already checked (see :class:`IsolatedChecker`); they are not
    checked again when it matches this manifest, whose hashes pin every file.
    """
    manifest, raw = _read_manifest(path)
    sha = hashlib.sha256(raw).hexdigest()
    if graphs_checked is not None and graphs_checked != sha:
        raise BundleError(f"{path}: manifest.json changed while the bundle was being checked")
    signed_by = verify_signature(path, raw, trusted or TrustedKeys())
    blobs: dict[str, bytes] = {}
    for name, entry in manifest.files.items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: {name} is listed in the manifest but missing")
        size = file.stat().st_size
        if size > max_file_bytes:
            raise BundleError(f"{path}: {name} is {size} bytes, over the cap of {max_file_bytes}")
        blob = file.read_bytes()
        if len(blob) != entry.bytes or hashlib.sha256(blob).hexdigest() != entry.sha256:
            raise BundleError(f"{path}: {name} does not match its sha256 in the manifest")
        if name.endswith(".onnx") and graphs_checked is None:
            _check_onnx(name, blob)
        blobs[name] = blob
    return VerifiedBundle(
        path=path,
        manifest=manifest,
        sha256=sha,
        blobs=blobs,
        signed_by=signed_by,
    )


def _serve_checks() -> int:
    """``python -m router_service.bundles.verify --serve``: the checker process. Reads one
    JSON request per line (``{"path": ..., "max_file_bytes": ...}``) and answers one JSON line
    (``{"sha256": ...}`` or ``{"refused": REASON}``). JSON both ways: nothing is unpickled."""
    os.nice(10)  # yield the CPU to the serving process
    for line in sys.stdin:
        try:
            ask = json.loads(line)
            answer = {"sha256": verify_bundle(Path(ask["path"]), int(ask["max_file_bytes"])).sha256}
        except BundleError as exc:
            answer = {"refused": str(exc)}
        except Exception as exc:  # a bad request line: say so, keep serving
            answer = {"error": type(exc).__name__}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


class IsolatedChecker:
    """Runs every check of :func:`verify_bundle` but the signature in a long-lived child
    process at low CPU priority, and returns the manifest sha256 it checked (for
    ``graphs_checked``). ``onnx.checker`` holds the GIL for tens of milliseconds on a large
    graph: in the serving process that stalls the event loop, in the child it cannot. The child
    speaks JSON lines over its stdin and stdout (no pickle), is started on first use
    (:meth:`start` starts it ahead of time) and restarted if it dies or hangs."""

    def __init__(self, timeout_s: float = 120.0) -> None:
        self._timeout_s = timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            self._spawn()

    def _spawn(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "router_service.bundles.verify", "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        return self._proc

    def check(self, path: Path, max_file_bytes: int) -> str:
        with self._lock:
            proc = self._spawn()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(
                    json.dumps({"path": str(path), "max_file_bytes": max_file_bytes}) + "\n"
                )
                proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], self._timeout_s)
                line = proc.stdout.readline() if ready else ""
            except OSError:
                line = ""
            if not line:
                self._kill()
                if not ready:
                    raise BundleError(f"{path}: checking took over {self._timeout_s:.0f} s")
                raise RuntimeError("the bundle checker process died; it restarts at the next try")
        answer = json.loads(line)
        if "sha256" in answer:
            return str(answer["sha256"])
        if "refused" in answer:
            raise BundleError(str(answer["refused"]))
        raise RuntimeError(f"the bundle checker failed ({answer.get('error')})")

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def close(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                assert self._proc.stdin is not None
                self._proc.stdin.close()  # the child ends at end of input
                try:
                    self._proc.wait(5)
                except subprocess.TimeoutExpired:
                    self._kill()
            self._proc = None


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        sys.exit(_serve_checks())
    sys.exit("usage: python -m router_service.bundles.verify --serve")
