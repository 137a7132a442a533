"""The e2e stack's S3 server (moto's server mode on loopback), as the harness and Airflow reach it."""

from __future__ import annotations

import urllib.request
from typing import Any

REGION = "us-east-1"
# Dummy keys: moto accepts any, and a real S3-compatible store is configured the same way.
ACCESS_KEY = "e2e-access-key"
SECRET_KEY = "e2e-secret-key"


class S3:
    def __init__(self, url: str, bucket: str) -> None:
        self.url = url
        self.bucket = bucket

    def healthy(self) -> bool:
        # moto's own API answers without a key, so readiness needs none.
        with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=2) as answer:
            return bool(answer.status == 200)

    def connection(self) -> dict[str, Any]:
        """An Airflow AWS connection to this server, in ``AIRFLOW_CONN_<ID>``'s JSON form."""
        return {
            "conn_type": "aws",
            "login": ACCESS_KEY,
            "password": SECRET_KEY,
            "extra": {"endpoint_url": self.url, "region_name": REGION},
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def create_bucket(self) -> None:
        self.client().create_bucket(Bucket=self.bucket)

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def get(self, key: str) -> bytes:
        return bytes(self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read())
