"""Start the HealthOmics fake (:mod:`tests.support.omics_fake`) beside moto's server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.network import free_port, moto_s3
from tests.support.omics_fake import OmicsFake

ROOT = Path(__file__).resolve().parents[2]
PRIVATE_WORKFLOW = "1234567"
READY2RUN_WORKFLOW = "9500001"
BUCKETS = ("flowdeck-omics-out", "flowdeck-omics-staging")
# moto accepts any key; these must never appear in a log
ACCESS_KEY, SECRET_KEY = "AKIAFLOWDECKTEST0001", "flowdeck/secret/never/logged/0123456789"


@contextmanager
def omics_fake(timing: dict[str, float] | None = None, **config: Any) -> Iterator[OmicsFake]:
    """moto's server and the fake for the block; AWS credentials set in this process's environment."""
    env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        with moto_s3() as aws_url:
            import boto3

            s3 = boto3.client("s3", endpoint_url=aws_url, region_name="us-east-1")
            for bucket in BUCKETS:
                s3.create_bucket(Bucket=bucket)
            with _process(aws_url, timing or {}, config) as url:
                yield OmicsFake(url=url, aws_url=aws_url)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _process(aws_url: str, timing: dict[str, float], config: dict[str, Any]) -> Iterator[str]:
    port = free_port()
    workflows = {PRIVATE_WORKFLOW: "PRIVATE", READY2RUN_WORKFLOW: "READY2RUN"}
    full = {"aws_endpoint_url": aws_url, "workflows": workflows, "timing": timing, **config}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.omics_fake", str(port), json.dumps(full)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", "the omics fake did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        child.kill()
        child.wait()


def omics_settings(fake: OmicsFake, data_dir: Path, **overrides: Any) -> dict[str, Any]:
    """Settings that point the omics backend at the fake and moto."""
    return {
        "data_dir": data_dir,
        "backends": ["omics"],
        "omics_region": "us-east-1",
        "omics_role_arn": "arn:aws:iam::123456789012:role/flowdeck-omics-run",
        "omics_output_uri": f"s3://{BUCKETS[0]}/runs/",
        "omics_staging_uri": f"s3://{BUCKETS[1]}/inputs/",
        "omics_endpoint_url": fake.url,
        "omics_s3_endpoint_url": fake.aws_url,
        "omics_logs_endpoint_url": fake.aws_url,
        "omics_max_attempts": 2,
        "omics_task_refresh_seconds": 0,
        **overrides,
    }
