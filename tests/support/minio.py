"""A real MinIO server for tests: started on free ports with a temporary data directory,
stopped by pid."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.procs import free_port, stop_process, tool

ACCESS_KEY = "routeiq-test"
SECRET_KEY = "routeiq-test-secret"  # a throwaway server's credentials, not a real secret


class MinioServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="routeiq-minio-"))
        self.log_path = self.dir / "minio.log"
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                tool("minio"),
                "server",
                str(self.dir / "data"),
                "--address",
                f"127.0.0.1:{self.port}",
                "--console-address",
                f"127.0.0.1:{free_port()}",
                "--quiet",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={
                "MINIO_ROOT_USER": ACCESS_KEY,
                "MINIO_ROOT_PASSWORD": SECRET_KEY,
                "MINIO_BROWSER": "off",
                "MINIO_UPDATE": "off",
                "HOME": str(self.dir),
            },
        )
        self._wait_live()

    def _wait_live(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"minio exited: {self.log_path.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/minio/health/live", timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise TimeoutError(f"minio not live after {timeout_s:.0f} s")

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS variables a client (the service, boto3) reads."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        stop_process(self.proc, 10.0)
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
