"""The one settings object.

Every value comes from an environment variable prefixed ``FLOWDECK_`` (nested
values use ``__``), from an optional file named by ``FLOWDECK_CONFIG_FILE``
(YAML or ``.env``), or from its default. Nothing here is built at import time:
callers make a :class:`Settings` and pass it down.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ByteSize, Field, NonNegativeInt, PositiveFloat, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

AuthMode = Literal["none", "basic", "oidc"]
StorageKind = Literal["local", "s3"]
# Lists read from the environment as comma-separated text or a JSON array.
StrList = Annotated[list[str], NoDecode]


class _YamlFileSource(PydanticBaseSettingsSource):
    """Reads settings from the YAML file named by FLOWDECK_CONFIG_FILE, if any."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("FLOWDECK_CONFIG_FILE")
        if not path or not path.endswith((".yml", ".yaml")):
            return {}
        # PyYAML (~1 MB) only when a YAML settings file is named: the API server parses no YAML.
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the settings file must hold a mapping")
        return data


class Settings(BaseSettings):
    """flowdeck's configuration. See the README's configuration reference."""

    model_config = SettingsConfigDict(
        env_prefix="FLOWDECK_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    # --- where things live
    data_dir: Path = Field(
        Path("flowdeck-data"), description="Root folder for the database file, storage and run folders."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL. Default: a SQLite file in data_dir. PostgreSQL: postgresql+psycopg://user:pw@host/db; "
        "MariaDB (>= 10.6): mysql+asyncmy://user:pw@host/db (mysql:// and mariadb:// mean the same)",
    )
    database_pool_size: int = Field(10, ge=1, description="Connection pool size (PostgreSQL, MariaDB).")
    database_connect_timeout_seconds: int = Field(
        5, ge=1, description="PostgreSQL, MariaDB: how long opening a connection may take before the call fails (503)."
    )
    database_statement_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="PostgreSQL, MariaDB: the server cancels a statement running longer than this; a transaction that has "
        "no answer after the connect and statement timeouts plus one second (a hung server) is abandoned "
        "client-side. Either way the call answers 503 with Retry-After.",
    )
    pipelines_dir: Path | None = Field(
        None, description="Folder of pipeline YAML files. Default: the catalog shipped with flowdeck."
    )
    # --- references and site tools (docs/references.md)
    references_dir: Path | None = Field(
        None,
        description="Folder of reference YAML files (genomes, transcriptomes) that pipelines' reference parameters "
        "name; indexes are built once with 'flowdeck references index NAME'. Unset: no references are registered.",
    )
    gatk_executable: str | None = Field(
        None,
        description="The GATK 4 'gatk' launcher (a path or a name on PATH). Unset: pipelines' GATK callers "
        "(HaplotypeCaller, Mutect2) are refused at submit, naming the callers this site has.",
    )
    max_request_runs: int = Field(
        10_000, ge=1, description="Most runs one request may expand into (datasets or sample-sheet rows)."
    )
    idempotency_ttl_seconds: float = Field(
        24 * 3600.0, gt=0, description="How long an Idempotency-Key is remembered; older keys may be reused."
    )

    # --- HTTP service
    host: str = Field("127.0.0.1", description="Address the API binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port the API binds to.")
    public_url: str | None = Field(
        None,
        description="Base URL clients reach the service at; used in log and download links. Default: taken from each request.",
    )
    cors_origins: StrList = Field(default_factory=list, description="Origins allowed by CORS.")
    opentelemetry: bool = Field(
        False,
        description="FastAPI's native OpenTelemetry spans, metrics and logs of HTTP requests, sent to the OpenTelemetry "
        "SDK configured in the process (or set up by FASTAPI_OTEL_AUTO_CONFIGURE=true and the OTEL_* variables). "
        "Off, requests skip FastAPI's check for an SDK (a few µs each); /metrics is Prometheus either way.",
    )
    max_upload_bytes: int = Field(
        100 * 1024 * 1024, ge=1, description="Largest accepted request body (attachments, uploads)."
    )
    max_page_size: int = Field(1000, ge=1, description="Largest page size a list endpoint accepts.")
    default_page_size: int = Field(50, ge=1, description="Page size when the client gives none.")
    list_concurrency: int = Field(
        2,
        ge=1,
        description="Paged list reads one API process works on at once; the rest wait their turn, so a flood of "
        "lists slows lists but never status polls or submissions.",
    )
    log_level: str = Field("INFO", description="Python logging level.")
    access_log: bool = Field(
        False,
        description="Log one line per HTTP request (logger flowdeck.access): method, path without the query, "
        "status, duration and the caller's name; never headers, credentials or query strings.",
    )
    service_name: str = Field("flowdeck", description="Name in service-info.")
    organization_name: str = Field("flowdeck", description="Organization in service-info.")
    organization_url: str = Field("https://example.org", description="Organization URL in service-info.")
    contact_url: str | None = Field(None, description="Contact URL in service-info.")
    environment: str = Field("dev", description="Environment label in service-info (dev, test, prod).")

    # --- auth
    auth_mode: AuthMode = Field("none", description="none, basic or oidc. API tokens work in basic and oidc modes.")
    allow_open_on_public_address: bool = Field(False, description="Let auth_mode=none bind a non-loopback address.")
    oidc_issuer: str | None = Field(None, description="Expected token issuer (iss).")
    oidc_audience: str | None = Field(None, description="Expected audience (aud).")
    oidc_jwks_url: str | None = Field(None, description="JWKS URL. Default: discovered from the issuer.")
    oidc_algorithms: StrList = Field(default_factory=lambda: ["RS256", "ES256"], description="Accepted JWT algorithms.")
    oidc_groups_claim: str = Field("groups", description="Claim that lists the user's research groups.")
    oidc_admin_group: str | None = Field(None, description="Group whose members are service admins.")
    oidc_username_claim: str = Field("preferred_username", description="Claim that names the user.")
    oidc_ui_client_id: str | None = Field(
        None,
        description="The web UI's client id at the issuer: turns on OIDC sign-in in the browser (authorization code "
        "+ PKCE, redirect URI <public URL>/ui/oidc/callback). Unset: the UI takes API tokens in mode oidc.",
    )
    oidc_ui_client_secret: SecretStr | None = Field(
        None,
        description="The web UI's client secret (a confidential client); unset for a public client (never logged).",
    )
    oidc_ui_scopes: str = Field(
        "openid profile", description="Scopes the web UI asks for; add the one that releases the groups claim."
    )
    oidc_cli_client_id: str | None = Field(
        None,
        description="A public client id at the issuer for `flowdeck login --oidc` (OAuth device flow, RFC 8628); "
        "advertised in service-info with oidc_issuer. Its access tokens must carry oidc_audience.",
    )
    oidc_cli_scopes: str = Field(
        "openid profile offline_access",
        description="Scopes `flowdeck login --oidc` asks for (advertised in service-info); offline_access asks "
        "for a refresh token.",
    )

    # --- storage
    storage: StorageKind = Field("local", description="local or s3.")
    s3_bucket: str | None = Field(None, description="Bucket for storage=s3.")
    s3_prefix: str = Field("flowdeck/", description="Key prefix in the bucket.")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (for an S3-compatible server).")
    s3_region: str = Field("us-east-1", description="S3 region.")
    presign_seconds: int = Field(3600, ge=60, description="Lifetime of pre-signed URLs.")
    storage_secret: SecretStr | None = Field(
        None,
        description="HMAC key of local storage's signed URLs. Default: a random secret generated once and kept in data_dir.",
    )
    live_log_seconds: float = Field(
        30.0,
        ge=0,
        description="While a run executes, the worker copies its and its tasks' logs (those that grew) to storage at most this often, so the API serves them from there (docs/storage.md); 0: only when the run ends.",
    )
    # Deleting and expiring runs (docs/storage.md): off unless retention_days is set.
    retention_days: float | None = Field(
        None,
        gt=0,
        description="Ended runs older than this many days (since they ended) are deleted with their stored files by the worker and flowdeck purge. Default: kept forever.",
    )
    retention_states: StrList = Field(
        default_factory=lambda: ["COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"],
        description="States of the ended runs the retention purge deletes (comma-separated or JSON list of ended WES states).",
    )
    purge_interval_seconds: float = Field(
        3600.0, gt=0, description="How often a worker purges runs past retention_days (when it is set)."
    )
    dataset_file_roots: list[Path] = Field(
        default_factory=list,
        description="Folders whose files POST /datasets may register, and runs may name as inputs (docs/staging.md), as file:// URIs (JSON list). Empty: file:// refused, since it would let clients name any file the server can read.",
    )
    # Input staging (services/execution/staging.py, docs/staging.md)
    staging_s3_prefixes: dict[str, list[str]] = Field(
        default_factory=dict,
        description='s3:// prefixes each research group may stage run inputs from (JSON object: group -> list of prefixes; the key "*" grants every group). Empty: s3:// inputs are refused.',
    )
    staging_max_https_bytes: int = Field(
        1024 * 1024 * 1024, ge=1, description="Largest https:// input a run may stage (bytes)."
    )

    # --- worker
    worker_poll_seconds: float = Field(1.0, gt=0, description="Sleep between worker iterations when idle.")
    lease_seconds: float = Field(60.0, gt=1, description="How long a worker's claim on a run lasts without renewal.")
    heartbeat_seconds: float = Field(10.0, gt=0, description="How often a worker records that it lives.")
    dispatch_batch: int = Field(8, ge=1, description="Runs a worker claims for dispatch per iteration.")
    events_heartbeat_seconds: float = Field(
        15.0,
        gt=0,
        description="GET /events sends a comment line after this long without an event (keeps proxies open).",
    )
    events_queue_size: int = Field(
        1000, ge=1, description="Events held per open stream; a client further behind is caught up from the database."
    )
    events_poll_seconds: float = Field(
        0.1,
        gt=0,
        description="How often the API looks for new events without a wake-up (SQLite: a worker in another process; "
        "PostgreSQL: only while its LISTEN connection is down), while any stream is open.",
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, description="Timeout of one webhook delivery (docs/webhooks.md)."
    )
    webhook_retry_seconds: float = Field(
        5.0, gt=0, description="Wait before a failed delivery's first retry; it doubles with each attempt."
    )
    webhook_retry_max_seconds: float = Field(3600.0, gt=0, description="Longest wait between two delivery attempts.")
    webhook_max_attempts: int = Field(
        12, ge=1, description="Attempts per delivery (webhook or e-mail) before it is marked failed."
    )
    delivery_batch: int = Field(50, ge=1, description="Deliveries a worker sends per iteration, in parallel.")
    delivery_retention_days: float = Field(
        30.0,
        ge=0,
        description="Delivered and failed deliveries older than this are deleted by the worker (hourly); "
        "0 keeps them forever.",
    )
    smtp_host: str | None = Field(None, description="SMTP server for e-mail notifications; unset: no e-mail is sent.")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP server port.")
    smtp_tls: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="SMTP transport security: STARTTLS, TLS from the start (SMTPS), or none."
    )
    smtp_user: str | None = Field(None, description="SMTP user name (none: no login).")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (never logged).")
    smtp_from: str = Field("flowdeck@localhost", description="From address of notification e-mails.")
    sync_batch: int = Field(500, ge=1, description="Runs a worker claims for one sync pass.")
    sync_concurrency: int = Field(16, ge=1, description="Parallel engine calls during a sync pass.")
    sync_min_seconds: float = Field(2.0, gt=0, description="Poll interval for a run that just started.")
    sync_max_seconds: float = Field(60.0, gt=0, description="Poll interval ceiling for long runs.")
    max_local_runs: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1),
        ge=1,
        description="Runs executing at once on local engines (default: the core count).",
    )
    group_weights: dict[str, PositiveFloat] = Field(
        default_factory=dict,
        description='Share of the execution slots per research group, as JSON (e.g. {"a": 2}); '
        'a group not named weighs 1, runs of no group count as the group "" (docs/quotas.md).',
    )
    group_max_running: dict[str, NonNegativeInt] = Field(
        default_factory=dict,
        description='Runs a research group may have executing at once on all engines, as JSON (e.g. {"a": 10}); '
        "a group not named has no limit of its own.",
    )
    group_max_stored_bytes: dict[str, ByteSize] = Field(
        default_factory=dict,
        description="Bytes a research group may hold in storage (its runs' outputs and logs) before its submissions are "
        'refused, as JSON with sizes as numbers or strings (e.g. {"a": "500GB", "": "10GiB"}); '
        "a group not named has no quota (docs/quotas.md).",
    )
    watchdog_seconds: float = Field(
        7 * 24 * 3600.0, gt=0, description="A run whose engine reports nothing new for this long ends SYSTEM_ERROR."
    )
    max_failed_checks: int = Field(
        10,
        ge=1,
        description="A run on which the backend itself fails this many checks in a row ends SYSTEM_ERROR (an unreachable engine never ends a run).",
    )
    dispatch_timeout_seconds: float = Field(
        3.0, ge=0, description="How long POST /jobs waits for the engine before answering 202 queued."
    )

    # --- workflows and engines
    backends: StrList = Field(
        default_factory=lambda: ["demo", "cwltool", "snakemake", "miniwdl", "toil", "galaxy", "omics"],
        description="Backends to enable; ones whose engine is not installed are skipped.",
    )
    max_tags: int = Field(64, ge=1, description="Most tags one run may carry (every door).")
    max_tag_value_chars: int = Field(
        1024, ge=1, description="Longest tag value, in characters (tags are shown on every run list page)."
    )
    max_description_chars: int = Field(4096, ge=1, description="Longest run or request description, in characters.")
    allowed_workflow_url_prefixes: StrList = Field(
        default_factory=lambda: ["https://"], description="Remote workflow_url prefixes accepted besides attachments."
    )
    outbound_allowlist: StrList = Field(
        default_factory=list,
        description="Hosts or networks (CIDR) that URLs given by clients may reach although they are not public addresses (loopback, private, link-local, metadata: refused otherwise; docs/ssrf.md).",
    )
    remote_fetch_timeout_seconds: float = Field(
        10.0, gt=0, description="Timeout of each request flowdeck makes to fetch a client's remote workflow_url."
    )
    containers: bool = Field(
        False,
        description="Run the CWL steps that declare a DockerRequirement (cwltool) and the WDL tasks of a document naming a runtime container (miniwdl) through podman (docs/adr/0013); off: a DockerRequirement under requirements is refused at submit, a WDL runtime image is ignored (tasks run on the host, sandboxed).",
    )
    container_registry: str | None = Field(
        None,
        description="Registry (or mirror) images are pulled from on first use, named in the message when an image is missing; untested here (no registry reachable).",
    )
    podman_options: str = Field(
        "--runtime /usr/sbin/runc --cgroup-manager cgroupfs",
        description="Options flowdeck gives every podman command (these machines need runc and cgroupfs).",
    )
    container_sandbox_images: Path | None = Field(
        None,
        description="Folder of the images shared read-only with containerised runs in their sandboxes (rootless podman storage of the sandbox user, filled from the service's podman on first use; docs/adr/0013). Default: data_dir/containers/sandbox-images.",
    )
    warm_starts: bool = Field(
        True,
        description="Start cwltool runs as forks of a process that has imported cwltool and parsed the CWL schemas once (~0.03 s instead of ~0.9 s of CPU a run). Off: every run starts the cwltool command.",
    )
    runs_dir: Path | None = Field(None, description="Folder of per-run working folders. Default: data_dir/runs.")
    sandbox: bool = Field(
        True,
        description="Run every local engine (cwltool, Snakemake, miniwdl, Toil) in a bubblewrap sandbox per run: only its own folder, inputs and the engines' installation in view, an unprivileged user, its own PID/IPC namespaces, no network, the limits below. Off only when set explicitly (service-info says which isolation is in force).",
    )
    sandbox_user: str = Field(
        "nobody", description="User (name or uid) sandboxed runs execute as when the service runs as root."
    )
    sandbox_network: bool = Field(
        False, description="Give every sandboxed run the network (a pipeline may ask for it with network: true)."
    )
    sandbox_memory_mb: int = Field(
        8192, ge=0, description="Address space of each process of a run, in MiB (RLIMIT_AS; 0: no limit)."
    )
    sandbox_cpu_seconds: int = Field(
        86400, ge=0, description="CPU time of each process of a run, in seconds (RLIMIT_CPU; 0: no limit)."
    )
    sandbox_max_processes: int = Field(
        1024,
        ge=16,
        description="Processes and threads a run may have at once (a pids cgroup, else RLIMIT_NPROC of the sandbox user); a run that reaches it is ended.",
    )
    sandbox_max_file_mb: int = Field(
        102400, ge=0, description="Largest file a run may write, in MiB (RLIMIT_FSIZE; 0: no limit)."
    )
    sandbox_read_only_paths: list[Path] = Field(
        default_factory=list,
        description="Folders every sandboxed run may read (registered references, shared indexes), JSON list.",
    )
    toil_batch_system: str = Field(
        "single_machine",
        description="Toil --batchSystem: single_machine here; slurm, kubernetes, aws_batch, … to run past one machine.",
    )
    toil_extra_args: list[str] = Field(
        default_factory=list,
        description="Extra toil-cwl-runner arguments set by the operator (JSON list), e.g. batch system options or a shared --workDir.",
    )
    slurm_conf: Path | None = Field(
        None,
        description="Slurm's slurm.conf for engines that submit Slurm jobs (toil_batch_system=slurm), passed as SLURM_CONF; unset: Slurm's default (/etc/slurm/slurm.conf). See docs/cluster.md.",
    )
    snakemake_executor: Literal["local", "slurm"] = Field(
        "local",
        description="Where Snakemake runs a run's jobs: local (beside the engine), or slurm (each job a Slurm job through snakemake-executor-plugin-slurm; needs a configless cluster or /etc/slurm/slurm.conf on the nodes, and sandbox=false). See docs/cluster.md.",
    )
    snakemake_extra_args: list[str] = Field(
        default_factory=list,
        description='Extra snakemake arguments set by the operator (JSON list), e.g. ["--slurm-status-command", "squeue"] on a cluster without accounting.',
    )

    demo_min_seconds: float = Field(10.0, ge=0, description="Shortest simulated run (demo backend).")
    demo_max_seconds: float = Field(30.0, ge=0, description="Longest simulated run (demo backend).")
    demo_success_rate: float = Field(0.8, ge=0, le=1, description="Share of simulated runs that succeed.")
    demo_seed: int = Field(0, description="Seed of the simulation; the same seed and run id give the same outcome.")

    galaxy_url: str | None = Field(None, description="Galaxy server URL.")
    galaxy_api_key: SecretStr | None = Field(None, description="Galaxy API key (never logged).")
    galaxy_allowed_workflows: StrList = Field(
        default_factory=list, description="Galaxy workflow names POST /jobs may invoke when no pipeline names them."
    )
    galaxy_timeout_seconds: float = Field(30.0, gt=0, description="Timeout of one Galaxy API call.")
    galaxy_batch_listing: bool = Field(
        True,
        description="Sync learns many invocations' states per Galaxy call (the invocation listing and multi-invocation job summaries). Off: each invocation's job summary is polled on its own (one call per run, two while Galaxy is still scheduling it), for a Galaxy whose listing misbehaves.",
    )
    galaxy_fast_sync_seconds: float = Field(
        30.0,
        ge=0,
        description="For this long after it starts, a Galaxy run is checked every galaxy_fast_sync_interval instead of sync_min_seconds (a tool request or a short workflow ends within it, and is seen ending sooner); 0 turns it off. Cost: at most window / interval extra checks per run, one Galaxy call each while nothing changes.",
    )
    galaxy_fast_sync_interval: float = Field(
        0.25, gt=0, description="Poll interval of a Galaxy run in its first galaxy_fast_sync_seconds."
    )

    omics_region: str | None = Field(
        None, description="AWS region of the HealthOmics backend. Default: the standard AWS chain's region."
    )
    omics_role_arn: str | None = Field(
        None, description="IAM role HealthOmics runs assume (StartRun roleArn). Required by the omics backend."
    )
    omics_output_uri: str | None = Field(
        None, description="s3:// prefix HealthOmics writes run outputs under. Required by the omics backend."
    )
    omics_staging_uri: str | None = Field(
        None, description="s3:// prefix local (file://) inputs are uploaded to before a HealthOmics run starts."
    )
    omics_storage_type: Literal["STATIC", "DYNAMIC"] | None = Field(
        None, description="HealthOmics run storage type (STATIC or DYNAMIC). Default: the service's."
    )
    omics_storage_capacity: int | None = Field(
        None, ge=1, description="HealthOmics STATIC run storage in GiB. Default: the service's."
    )
    omics_run_group_id: str | None = Field(None, description="HealthOmics run group for flowdeck's runs.")
    omics_priority: int | None = Field(None, ge=0, description="HealthOmics run priority within the run group.")
    omics_max_attempts: int = Field(
        6, ge=1, description="Attempts per HealthOmics, S3 or CloudWatch Logs call (botocore's retries with backoff)."
    )
    omics_task_refresh_seconds: float = Field(
        30.0,
        ge=0,
        description="While a HealthOmics run stays RUNNING, its task list is read at most this often (a sync is then one GetRun call, or its share of a ListRuns page when 20 or more such runs are synced together).",
    )
    omics_endpoint_url: str | None = Field(
        None, description="HealthOmics API endpoint (a VPC endpoint or the tests' fake). Default: AWS's."
    )
    omics_s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint the omics backend reads outputs from and stages inputs to. Default: AWS's."
    )
    omics_logs_endpoint_url: str | None = Field(
        None, description="CloudWatch Logs endpoint the omics backend reads run logs from. Default: AWS's."
    )

    @field_validator(
        "backends",
        "cors_origins",
        "allowed_workflow_url_prefixes",
        "outbound_allowlist",
        "galaxy_allowed_workflows",
        "oidc_algorithms",
        "retention_states",
        mode="before",
    )
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlFileSource(settings_cls), dotenv_settings, file_secret_settings)

    # --- derived values
    @property
    def resolved_database_url(self) -> str:
        """The database URL with its async driver."""
        if self.database_url is None:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'flowdeck.db').resolve()}"
        url = self.database_url
        for plain, driver in (
            ("sqlite://", "sqlite+aiosqlite://"),
            ("postgresql://", "postgresql+psycopg://"),
            ("postgres://", "postgresql+psycopg://"),
            ("mysql://", "mysql+asyncmy://"),
            ("mariadb://", "mysql+asyncmy://"),
            ("mariadb+asyncmy://", "mysql+asyncmy://"),  # one dialect name ("mysql") for the code to test
        ):
            if url.startswith(plain):
                return driver + url[len(plain) :]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def resolved_runs_dir(self) -> Path:
        return (self.runs_dir or self.data_dir / "runs").resolve()

    @property
    def storage_dir(self) -> Path:
        return (self.data_dir / "storage").resolve()
