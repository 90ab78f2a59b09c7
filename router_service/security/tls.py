"""TLS for the service's gRPC ports, with certificates reloaded from disk without a restart.

The server certificate chain and key (and, for mutual TLS, the CA that signs client
certificates) are read at start-up, where anything wrong stops the start with a message. gRPC
asks :meth:`CertificateFiles.fetch` for the current configuration at each new TLS handshake;
at most every ``tls.reload_s`` it looks at the files' modification times and, when they
changed and the new pair loads and matches, serves the new one. Connections already open keep
the certificate they started with; a half-written or mismatched pair is ignored (logged once)
and the previous one keeps serving. gRPC's own minimum protocol version is TLS 1.2.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from router_service.config import TlsSettings
from router_service.errors import ConfigError

__all__ = ["CertificateFiles"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Pem:
    key: bytes
    chain: bytes
    client_ca: bytes | None
    stamp: tuple[int, ...]
    subject: str
    not_after: str


def _stamp(paths: list[Path]) -> tuple[int, ...]:
    out: list[int] = []
    for p in paths:
        st = p.stat()
        out += [st.st_mtime_ns, st.st_size, st.st_ino]
    return tuple(out)


def _read(cfg: TlsSettings) -> _Pem:
    """Read and check the files; ValueError or OSError saying what is wrong."""
    assert cfg.cert_file is not None and cfg.key_file is not None
    paths = [cfg.cert_file, cfg.key_file, *([cfg.client_ca_file] if cfg.client_ca_file else [])]
    stamp = _stamp(paths)
    chain = cfg.cert_file.read_bytes()
    key_pem = cfg.key_file.read_bytes()
    certs = x509.load_pem_x509_certificates(chain)
    key = serialization.load_pem_private_key(key_pem, password=None)
    if certs[0].public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise ValueError(f"{cfg.key_file} is not the key of the certificate in {cfg.cert_file}")
    client_ca = None
    if cfg.client_ca_file is not None:
        client_ca = cfg.client_ca_file.read_bytes()
        x509.load_pem_x509_certificates(client_ca)
    if stamp != _stamp(paths):  # rewritten while we read: try again at the next handshake
        raise ValueError("the files changed while being read")
    return _Pem(
        key_pem,
        chain,
        client_ca,
        stamp,
        certs[0].subject.rfc4514_string(),
        certs[0].not_valid_after_utc.isoformat(),
    )


class CertificateFiles:
    """The server's TLS credentials, following the files in ``cfg``."""

    def __init__(self, cfg: TlsSettings) -> None:
        self._cfg = cfg
        try:
            self._pem = _read(cfg)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"tls: cannot use the certificate files: {exc}") from None
        self._checked = time.monotonic()
        self._lock = threading.Lock()
        self._failed: str = ""
        self.reloads = 0
        log.info(
            "TLS: serving %s (valid until %s)%s",
            self._pem.subject,
            self._pem.not_after,
            ", client certificates required" if self.mutual else "",
        )

    @property
    def mutual(self) -> bool:
        return self._cfg.client_ca_file is not None and self._cfg.require_client_cert

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self._pem.key, self._pem.chain)], root_certificates=self._pem.client_ca
        )

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(),
            self.fetch,  # type: ignore[arg-type]  # None means "no change" (grpc docs)
            require_client_authentication=self.mutual,
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC at each handshake: a new configuration when the files changed."""
        now = time.monotonic()
        if now - self._checked < self._cfg.reload_s or not self._lock.acquire(blocking=False):
            return None
        try:
            self._checked = now
            cfg = self._cfg
            paths = [p for p in (cfg.cert_file, cfg.key_file, cfg.client_ca_file) if p]
            try:
                if _stamp(paths) == self._pem.stamp:
                    return None
                pem = _read(cfg)
            except (OSError, ValueError) as exc:
                if str(exc) != self._failed:
                    self._failed = str(exc)
                    log.error(
                        "TLS: not reloading the certificate files (%s); keeping %s",
                        exc,
                        self._pem.subject,
                    )
                return None
            self._pem, self._failed = pem, ""
            self.reloads += 1
            log.info("TLS: reloaded %s (valid until %s)", pem.subject, pem.not_after)
            return self._configuration()
        finally:
            self._lock.release()
