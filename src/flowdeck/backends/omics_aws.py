"""What the ``omics`` backend needs from AWS, apart from the backend itself: boto3 clients,
AWS errors translated once into flowdeck's, HealthOmics states mapped once onto WES, and
the forms a HealthOmics workflow may be named in.

Retries are botocore's own (``standard`` mode: exponential backoff with jitter on
throttling, 5xx and timeouts, ``omics_max_attempts`` attempts). What is still failing
after them is :class:`EngineUnavailable` when waiting may help (throttling, a service
error, an expired or missing credential, no connection) and :class:`EngineError` when
the request itself is wrong. Credentials come from the standard AWS chain and never
appear in a message: botocore's errors name the failing call, not the keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.domain.runs import RunSpec
from flowdeck.domain.states import State
from flowdeck.errors import EngineError, EngineUnavailable, InvalidInput

if TYPE_CHECKING:
    from flowdeck.settings import Settings

T = TypeVar("T")
LOG_GROUP = "/aws/omics/WorkflowLog"

# GetRun's status -> WES state: the one place HealthOmics run states are read.
RUN_STATES: dict[str, State] = {
    "PENDING": State.INITIALIZING,
    "STARTING": State.INITIALIZING,
    "RUNNING": State.RUNNING,
    "STOPPING": State.CANCELING,
    "COMPLETED": State.COMPLETE,
    "FAILED": State.EXECUTOR_ERROR,
    "CANCELLED": State.CANCELED,
    # deleted in HealthOmics by someone else: its record and outputs are gone
    "DELETED": State.SYSTEM_ERROR,
}
TASK_STATES: dict[str, State] = {
    "PENDING": State.QUEUED,
    "STARTING": State.INITIALIZING,
    "RUNNING": State.RUNNING,
    "STOPPING": State.CANCELING,
    "COMPLETED": State.COMPLETE,
    "FAILED": State.EXECUTOR_ERROR,
    "CANCELLED": State.CANCELED,
}
# Errors after which the same call may succeed later: the run's state is left alone.
_WAIT_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestTimeoutException",
        "InternalServerException",
        "ServiceQuotaExceededException",
        "ServiceUnavailableException",
        "ExpiredTokenException",
        "ExpiredToken",
        "RequestExpired",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "AccessDeniedException",
    }
)
_ID = re.compile(r"[0-9]{1,18}")
_ARN = re.compile(r"arn:aws[a-z-]*:omics:[a-z0-9-]*:[0-9]*:workflow/([0-9]{1,18})")


@dataclass(frozen=True)
class OmicsWorkflow:
    """A HealthOmics workflow: its id, PRIVATE or READY2RUN, and an optional version name."""

    id: str
    type: str = "PRIVATE"
    version: str | None = None


def parse_workflow(text: str) -> OmicsWorkflow:
    """``[private:|ready2run:]<id>[@<version>]`` or a workflow ARN (InvalidInput otherwise)."""
    body, _, version = text.strip().partition("@")
    kind, _, ident = body.rpartition(":") if body.lower().startswith(("private:", "ready2run:")) else ("", "", body)
    if match := _ARN.fullmatch(ident.strip()):
        ident = match.group(1)
    if not _ID.fullmatch(ident.strip()):
        raise InvalidInput(
            f"not a HealthOmics workflow: {text[:200]!r} (expected an id such as 1234567, "
            "ready2run:1234567, private:1234567@v2 or a workflow ARN)"
        )
    return OmicsWorkflow(ident.strip(), kind.upper() or "PRIVATE", version.strip() or None)


def workflow_of(spec: RunSpec) -> OmicsWorkflow:
    """The workflow a run names: its pipeline's target, or the WES ``workflow_url``."""
    return parse_workflow(str(spec.pipeline_target.get("workflow") or spec.workflow_url))


def is_run_id(value: str | None) -> bool:
    return value is not None and _ID.fullmatch(value) is not None


def request_id(run_id: str) -> str:
    """StartRun's idempotency token: the same for every dispatch of one flowdeck run."""
    return f"flowdeck-{run_id}"[:128]


def run_name(run_id: str) -> str:
    return f"flowdeck-{run_id}"[:128]


def split_s3(uri: str) -> tuple[str, str]:
    """Bucket and key (or key prefix, possibly empty) of an ``s3://`` URI."""
    if not uri.lower().startswith("s3://"):
        raise InvalidInput(f"not an s3:// URI: {uri[:200]!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise InvalidInput(f"s3:// URI without a bucket: {uri[:200]!r}")
    return bucket, key


class AwsClients:
    """One boto3 session and its HealthOmics, S3 and CloudWatch Logs clients (thread-safe once made)."""

    def __init__(self, settings: Settings) -> None:
        session = boto3.session.Session(region_name=settings.omics_region)
        retries: dict[str, Any] = {"mode": "standard", "total_max_attempts": settings.omics_max_attempts}
        pool = settings.sync_concurrency + 4
        # An endpoint given by address cannot take HealthOmics' "workflows-" host prefix.
        omics_config = Config(
            retries=retries, max_pool_connections=pool, inject_host_prefix=settings.omics_endpoint_url is None
        )
        config = Config(retries=retries, max_pool_connections=pool)
        self.omics = session.client("omics", endpoint_url=settings.omics_endpoint_url, config=omics_config)
        # SigV4 links: the only kind every region takes
        s3_config = config.merge(Config(signature_version="s3v4"))
        self.s3 = session.client("s3", endpoint_url=settings.omics_s3_endpoint_url, config=s3_config)
        self.logs = session.client("logs", endpoint_url=settings.omics_logs_endpoint_url, config=config)


def aws_call(what: str, call: Callable[..., T], /, **kwargs: Any) -> T:
    """``call(**kwargs)`` with AWS's failures as flowdeck's: EngineUnavailable when waiting
    may help, EngineError (``aws_code`` in its extra) when it will not."""
    try:
        return call(**kwargs)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = f"AWS could not {what}: {code} {error.get('Message', '')}".strip()
        if code in _WAIT_CODES or status >= 500 or status == 429:
            raise EngineUnavailable(message, aws_code=code) from None
        raise EngineError(message, aws_code=code) from None
    except BotoCoreError as exc:  # no connection, no credentials, a read timeout
        raise EngineUnavailable(f"AWS could not {what}: {type(exc).__name__}: {exc}") from None
