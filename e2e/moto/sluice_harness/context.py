"""Where the emulator listens, and clients that call it as a principal."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

import boto3
from botocore.config import Config

log = logging.getLogger("sluice.harness")


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def env(self) -> dict[str, str]:
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env


class Emulator:
    """The server's own address, set once the launcher knows its port."""

    endpoint: str = ""
    # Scales the waits AWS documents between retries (1 = as AWS documents).
    # Tests set a small factor so a retried delivery takes seconds, not minutes.
    delay_factor: float = float(os.environ.get("SLUICE_HARNESS_DELAY_FACTOR", "1"))
    state_dir: str = os.environ.get("SLUICE_HARNESS_DIR", "/tmp/sluice-harness")

    _clients: dict[tuple[str, str, str], object] = {}
    _lock = threading.Lock()

    @classmethod
    def configure(cls, host: str, port: int) -> None:
        host = "127.0.0.1" if host in ("0.0.0.0", "", "localhost") else host
        cls.endpoint = f"http://{host}:{port}"
        os.makedirs(cls.state_dir, exist_ok=True)

    @classmethod
    def client(cls, service: str, region: str, creds: Credentials):  # type: ignore[no-untyped-def]
        """A boto3 client of this emulator acting as `creds` (one per principal)."""
        key = (service, region, creds.access_key_id)
        with cls._lock:
            client = cls._clients.get(key)
            if client is None:
                client = boto3.client(
                    service,
                    region_name=region,
                    endpoint_url=cls.endpoint,
                    aws_access_key_id=creds.access_key_id,
                    aws_secret_access_key=creds.secret_access_key,
                    aws_session_token=creds.session_token,
                    config=Config(retries={"max_attempts": 2, "mode": "standard"}),
                )
                cls._clients[key] = client
            return client

    @classmethod
    def queue_url(cls, arn: str) -> str:
        """A queue's URL from its ARN, as AWS services address queues
        (no GetQueueUrl, which the roles need not be granted)."""
        parts = arn.split(":")
        return f"{cls.endpoint}/{parts[4]}/{parts[5]}"

    @classmethod
    def delay(cls, seconds: float) -> float:
        return seconds * cls.delay_factor
