"""A real S3 API on loopback for the tests: ``moto_server`` (moto[server] from PyPI) on a free
port, in its own temp dir and process group, stopped afterwards.

It serves the S3 REST API (including conditional PUTs, ``If-None-Match: *``, which delta-rs
commits rely on) over plain HTTP; any access key / secret is accepted.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "lakescore-test-key"
SECRET_KEY = "lakescore-test-secret-do-not-print"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        """The environment a user sets to point lakescore at this store."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "LAKESCORE_S3_PATH_STYLE": "true",
        }

    def client(self):  # boto3 comes with moto
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


@contextmanager
def moto_s3(
    workdir: Path, timeout_s: float = 30.0, *, check_credentials: bool = False
) -> Iterator[S3Server]:
    """Start ``moto_server`` on 127.0.0.1:<free port>; stop its process group on exit.
    ``check_credentials``: refuse access keys moto's IAM does not know (403
    InvalidAccessKeyId), as a real store refuses wrong credentials."""
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    log = open(workdir / "moto.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={
            **os.environ,
            "MOTO_ALLOW_NONEXISTENT_REGION": "true",
            **({"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if check_credentials else {}),
        },
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"moto_server did not start: {(workdir / 'moto.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(0.2)
        yield S3Server(endpoint)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
