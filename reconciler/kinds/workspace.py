"""The Workspace document: state backend, providers, defaults, pricing, registry, policy."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from reconciler.kinds.common import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    TRUSTED,
    Document,
    Labels,
    SpecModel,
    empty_list,
)
from reconciler.kinds.units import CpuQuantity, MemoryQuantity, UnitPrice


class EnvRef(SpecModel):
    env: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the value. Required.",
    )


class SqliteState(SpecModel):
    backend: Literal["sqlite"] = Field(description="sqlite selects this variant. Required.")
    path: str = Field(
        ".pipeform/state.db",
        description="State file, relative to the spec tree. Default: .pipeform/state.db.",
    )


class PostgresState(SpecModel):
    backend: Literal["postgres"] = Field(description="postgres selects this variant. Required.")
    dsn: EnvRef = Field(
        description="Connection string, read from an environment variable (it may hold a password). Required."
    )
    schema_name: str = Field(
        "pipeform",
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="Database schema for the state tables. Default: pipeform.",
    )


class S3State(SpecModel):
    backend: Literal["s3"] = Field(description="s3 selects this variant. Required.")
    bucket: str = Field(min_length=3, description="Bucket holding the state's objects. Required.")
    key: str = Field(
        "pipeform/state",
        min_length=1,
        description="Prefix under which the state's objects live (a snapshot, log objects, "
        "meta.json). Default: pipeform/state.",
    )
    region: str | None = Field(
        None, description="AWS region. Default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1."
    )
    lock_table: str = Field(
        description="DynamoDB table used for the lock (partition key LockID). Required."
    )
    endpoint_url: str | None = Field(
        None, description="Custom endpoint (an emulator). Default: AWS."
    )


StateBackend = Annotated[SqliteState | PostgresState | S3State, Field(discriminator="backend")]


class LocalExecutor(SpecModel):
    type: Literal["process", "container"] = Field(
        "process",
        description="How training runs: process (python -m trainer on this machine) or container (the trainer image, with podman). Default: process.",
        json_schema_extra=TRUSTED,
    )
    image: str = Field(
        "pipeform-trainer:0.1.0",
        min_length=1,
        description="The trainer image the container executor runs (make image builds it). Default: pipeform-trainer:0.1.0.",
        json_schema_extra=TRUSTED,
    )


class LocalEngine(SpecModel):
    type: Literal["spark"] = Field(
        description="spark: FeatureSets are materialised on Apache Spark through pyspark "
        "(docs/spark.md). Required."
    )
    master: str = Field(
        min_length=1,
        description="Spark master URL: local[N], spark://host:7077 (standalone), "
        "k8s://https://host:443 (Kubernetes) or yarn. Required.",
        json_schema_extra=TRUSTED,
    )
    driver_host: str | None = Field(
        None,
        description="Address the executors reach the driver at (spark.driver.host and "
        "bindAddress). Default: Spark's own choice.",
        json_schema_extra=TRUSTED,
    )
    executor_wait_seconds: float = Field(
        120,
        gt=0,
        description="Fail a materialisation when the cluster has had no executor for this "
        "long (a lost worker). Default: 120.",
    )
    conf: dict[str, str] = Field(
        default_factory=dict,
        description="Further Spark settings (spark.executor.memory, ...). Default: none.",
        json_schema_extra=TRUSTED,
    )


class LocalProvider(SpecModel):
    data_dir: str = Field(
        ".pipeform/data",
        description="Snapshots, features, runs and the local registry, relative to the spec tree. Default: .pipeform/data.",
        json_schema_extra=TRUSTED,
    )
    max_concurrent_jobs: int = Field(
        1, ge=1, description="Training runs at once on this machine. Default: 1."
    )
    allow_external_paths: bool = Field(
        False,
        description="Allow file:// sources outside the spec tree (absolute paths, '..', symlinks). Default: false.",
        json_schema_extra=TRUSTED,
    )
    executor: LocalExecutor = Field(
        default_factory=LocalExecutor,
        description="Where training attempts run. Default: a local process.",
        json_schema_extra=TRUSTED,
    )
    engine: LocalEngine | None = Field(
        None,
        description="Where FeatureSets are materialised: {type: spark, master: URL} runs them "
        "on Apache Spark. Default: none (this machine, in this process).",
        json_schema_extra=TRUSTED,
    )


class KubernetesImage(SpecModel):
    repository: str = Field(
        min_length=1,
        description="Repository of the trainer image (built by make image), such as "
        "registry.example.com/pipeform-trainer. Required.",
        json_schema_extra=TRUSTED,
    )
    digest: str | None = Field(
        None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="Digest the Jobs run the image by (sha256:...); required to run a "
        "TrainingJob. Default: none.",
        json_schema_extra=TRUSTED,
    )
    pull_policy: Literal["IfNotPresent", "Always", "Never"] = Field(
        "IfNotPresent",
        description="imagePullPolicy of the trainer container. Default: IfNotPresent.",
        json_schema_extra=TRUSTED,
    )


class KubernetesToleration(SpecModel):
    key: str | None = Field(None, description="Taint key. Default: any key (with Exists).")
    operator: Literal["Equal", "Exists"] = Field(
        "Equal", description="Equal or Exists. Default: Equal."
    )
    value: str | None = Field(None, description="Taint value, for Equal. Default: none.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect. Default: every effect."
    )


class KubernetesGpuType(SpecModel):
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Node labels a pod asking for this gpuType must match. Default: none.",
        json_schema_extra=TRUSTED,
    )
    tolerations: list[KubernetesToleration] = Field(
        default_factory=empty_list,
        description="Taints of these GPU nodes that the pods tolerate. Default: none.",
        json_schema_extra=TRUSTED,
    )


class KubernetesVolume(SpecModel):
    claim: str = Field(
        pattern=DNS_SUBDOMAIN,
        description="PersistentVolumeClaim holding the local provider's data directory "
        "(pipeform runs where it is mounted at providers.local.dataDir). Required.",
        json_schema_extra=TRUSTED,
    )
    mount_path: str = Field(
        "/pipeform",
        pattern=r"^/",
        description="Where pods mount the claim. Default: /pipeform.",
        json_schema_extra=TRUSTED,
    )


class KubernetesProvider(SpecModel):
    kubeconfig: str | None = Field(
        None,
        description="kubeconfig file, relative to the spec tree. Default: the first file in "
        "KUBECONFIG, else ~/.kube/config.",
        json_schema_extra=TRUSTED,
    )
    context: str | None = Field(
        None,
        description="kubeconfig context. Default: the file's current context.",
        json_schema_extra=TRUSTED,
    )
    in_cluster: bool = Field(
        False,
        description="Use the pod's service account (in-cluster configuration) instead of a "
        "kubeconfig. Default: false.",
        json_schema_extra=TRUSTED,
    )
    namespace: str = Field(
        "default",
        pattern=DNS_LABEL,
        max_length=63,
        description="Namespace of the objects pipeform makes, unless a document names "
        "another. Default: default.",
        json_schema_extra=TRUSTED,
    )
    namespaces: list[Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]] = Field(
        default_factory=empty_list,
        description="Other namespaces documents may name (Quota.namespace, a Secret target's "
        "namespace); any other is refused at plan time. Default: none.",
        json_schema_extra=TRUSTED,
    )
    image: KubernetesImage | None = Field(
        None,
        description="The trainer image the Jobs run. Default: none (required for a TrainingJob).",
        json_schema_extra=TRUSTED,
    )
    gpu_types: dict[Annotated[str, Field(pattern=DNS_LABEL)], KubernetesGpuType] = Field(
        default_factory=dict,
        description="Per gpuType: the nodeSelector and tolerations of the pods that ask for "
        "it. Default: none.",
        json_schema_extra=TRUSTED,
    )
    volume: KubernetesVolume | None = Field(
        None,
        description="The PersistentVolumeClaim the pods mount to reach datasets, features "
        "and checkpoints. Default: none.",
        json_schema_extra=TRUSTED,
    )
    service_account: str | None = Field(
        None,
        pattern=DNS_SUBDOMAIN,
        description="Service account the training pods run as. Default: the namespace's default.",
        json_schema_extra=TRUSTED,
    )
    ttl_seconds_after_finished: int = Field(
        86400,
        ge=60,
        description="Seconds a finished Job is kept for pipeform to read its result. "
        "Default: 86400.",
    )
    poll_seconds: float = Field(
        2.0, gt=0, le=60, description="Seconds between reads while apply waits. Default: 2."
    )
    dashboards: bool = Field(
        False,
        description="Also apply the Workspace's Grafana dashboards as ConfigMaps labelled "
        'grafana_dashboard: "1" (for the Grafana sidecar). Default: false.',
    )


AwsService = Literal["s3", "secretsmanager", "budgets", "cloudwatch", "sts"]


class AwsArtifacts(SpecModel):
    bucket: str = Field(
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="S3 bucket where Dataset snapshots, FeatureSet tables, training "
        "checkpoints and model packages are stored, content-addressed. It must exist.",
        json_schema_extra=TRUSTED,
    )
    prefix: str = Field(
        "pipeform",
        pattern=r"^[A-Za-z0-9!_.*'()/-]*$",
        description="Key prefix under the bucket (no leading or trailing slash needed). "
        "Default: pipeform.",
        json_schema_extra=TRUSTED,
    )


class AwsProvider(SpecModel):
    region: str = Field(
        "us-east-1",
        pattern=r"^[a-z]{2}(-[a-z]+)+-\d$",
        description="AWS region. Default: us-east-1.",
        json_schema_extra=TRUSTED,
    )
    endpoint_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="Custom endpoint for every service (an emulator, an S3-compatible store). "
        "Default: AWS.",
        json_schema_extra=TRUSTED,
    )
    endpoints: dict[AwsService, Annotated[str, Field(pattern=r"^https?://")]] = Field(
        default_factory=dict,
        description="Custom endpoint per service (s3, secretsmanager, budgets, cloudwatch, "
        "sts), over endpointUrl. Default: none.",
        json_schema_extra=TRUSTED,
    )
    profile: str | None = Field(
        None,
        description="Named profile. Default: the standard credential chain.",
        json_schema_extra=TRUSTED,
    )
    account_id: str | None = Field(
        None,
        pattern=r"^\d{12}$",
        description="Account of Budgets. Default: the credentials' account (sts "
        "GetCallerIdentity).",
        json_schema_extra=TRUSTED,
    )
    budget_subscribers: list[Annotated[str, Field(min_length=3)]] = Field(
        default_factory=empty_list,
        description="Who AWS Budgets notifies at a Budget's thresholds: email addresses or "
        "SNS topic ARNs (arn:aws:sns:...). Required for a Budget on the aws provider. "
        "Default: none.",
        json_schema_extra=TRUSTED,
    )
    secret_recovery_days: int = Field(
        7,
        ge=7,
        le=30,
        description="Days a deleted Secrets Manager secret can be restored (7 to 30). Default: 7.",
    )
    artifacts: AwsArtifacts | None = Field(
        None,
        description="Store Dataset snapshots, FeatureSet tables, checkpoints and model "
        "packages in this bucket (content-addressed), and have the trainer read and write "
        "them as s3:// locations. Default: none (everything stays in the local data directory).",
        json_schema_extra=TRUSTED,
    )


class PrometheusProvider(SpecModel):
    rules_dir: str = Field(
        ".pipeform/rules",
        description="Directory Prometheus loads rule files from. Default: .pipeform/rules.",
        json_schema_extra=TRUSTED,
    )
    dashboards_dir: str = Field(
        ".pipeform/dashboards",
        description="Directory the Workspace's Grafana dashboards (executive, on-call, debug) "
        "are written to as JSON, beside the rules file, for Grafana's file provisioning. "
        "Default: .pipeform/dashboards.",
        json_schema_extra=TRUSTED,
    )
    url: str | None = Field(
        None,
        description="Prometheus base URL, to reload and read rules back. Default: none (rule files are the live state).",
        json_schema_extra=TRUSTED,
    )
    pushgateway_url: str | None = Field(
        None, description="Pushgateway for run metrics. Default: none.", json_schema_extra=TRUSTED
    )
    alertmanager_url: str | None = Field(
        None, description="Alertmanager base URL. Default: none.", json_schema_extra=TRUSTED
    )
    require_promtool: bool = Field(
        False,
        description="Fail the apply when promtool (Debian package prometheus) is not installed "
        "to check a rules file before it is written. Default: false (write it unchecked "
        "after one warning).",
    )


class Providers(SpecModel):
    local: LocalProvider = Field(
        default_factory=LocalProvider,
        description="The embedded default. Default: its own defaults.",
    )
    kubernetes: KubernetesProvider | None = Field(
        None,
        description="The kubernetes provider: training Jobs and PyTorchJobs, ResourceQuotas, "
        "Secrets and PrometheusRules on a cluster (docs/kubernetes.md). Default: not configured.",
        json_schema_extra=TRUSTED,
    )
    aws: AwsProvider | None = Field(
        None,
        description="The aws provider: Secrets Manager, Budgets, CloudWatch alarms, and the "
        "region, credentials and endpoint of s3:// Dataset sources. Default: the standard AWS "
        "credential chain in us-east-1.",
        json_schema_extra=TRUSTED,
    )
    prometheus: PrometheusProvider = Field(
        default_factory=PrometheusProvider,
        description="Prometheus rules. Default: rule files under .pipeform/rules.",
    )
    plugins: dict[Annotated[str, Field(pattern=DNS_LABEL)], dict[str, Any]] = Field(
        default_factory=dict,
        description="Settings of third-party providers (installed with pip, found through the "
        "pipeform.providers entry points), by provider name; each provider checks its own. "
        "Default: none.",
        json_schema_extra=TRUSTED,
    )


class DefaultResources(SpecModel):
    cpu: CpuQuantity = Field(Decimal(1), description="CPU cores per job. Default: 1.")
    memory: MemoryQuantity = Field(2 * 2**30, description="Memory per job. Default: 2Gi.")


class Defaults(SpecModel):
    provider: str = Field(
        "local",
        pattern=DNS_LABEL,
        description="Provider for resources that name none. Default: local.",
    )
    labels: Labels = Field(
        default_factory=dict, description="Labels added to every resource. Default: none."
    )
    resources: DefaultResources = Field(
        default_factory=DefaultResources,
        description="Job resources when a TrainingJob states none. Default: 1 CPU, 2Gi.",
    )


class Pricing(SpecModel):
    currency: str = Field(
        "USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code. Default: USD."
    )
    cpu_hour: UnitPrice = Field(
        Decimal("0.04"), description="Price of one CPU core for an hour. Default: 0.04."
    )
    memory_gib_hour: UnitPrice = Field(
        Decimal("0.00"),
        alias="memoryGiBHour",
        description="Price of 1 GiB of memory for an hour. Default: 0.",
    )
    gpu_hour: dict[Annotated[str, Field(pattern=DNS_LABEL)], UnitPrice] = Field(
        default_factory=dict,
        description="Price of one GPU for an hour, per gpuType. Default: none.",
    )
    default_gpu_hour: UnitPrice = Field(
        Decimal("2.50"), description="Price of a GPU whose type is not listed. Default: 2.50."
    )


class Registry(SpecModel):
    type: Literal["local", "mlflow"] = Field(
        "local", description="local (SQLite in the data directory) or mlflow. Default: local."
    )
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI, for type mlflow. Default: none.",
        json_schema_extra=TRUSTED,
    )

    @model_validator(mode="after")
    def _mlflow_uri(self) -> Registry:
        if self.type == "mlflow" and not self.tracking_uri:
            raise ValueError(
                "registry type mlflow needs trackingUri, such as http://127.0.0.1:5000"
            )
        return self


class Policy(SpecModel):
    required_labels: list[str] = Field(
        default_factory=empty_list,
        description="Labels every resource must carry, such as team. Default: none.",
    )


class Lineage(SpecModel):
    file: str | None = Field(
        None,
        min_length=1,
        description="File that OpenLineage run events are appended to, one JSON object a line, "
        "relative to the spec tree. Default: none.",
        json_schema_extra=TRUSTED,
    )
    url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="OpenLineage HTTP endpoint each run event is POSTed to (Marquez: "
        "http://HOST:5000/api/v1/lineage). Default: none.",
        json_schema_extra=TRUSTED,
    )
    timeout_seconds: float = Field(
        5.0, gt=0, le=60, description="Seconds to wait for the endpoint. Default: 5."
    )


class WorkspaceSpec(SpecModel):
    state: StateBackend = Field(
        default_factory=lambda: SqliteState(backend="sqlite"),
        description="Where state lives: sqlite (a file beside the specs), postgres (tables in a "
        "schema of a shared database) or s3 (objects under a prefix, a DynamoDB lock); see "
        "docs/state-backends.md. Default: sqlite at .pipeform/state.db.",
        json_schema_extra=TRUSTED,
    )
    providers: Providers = Field(
        default_factory=Providers, description="Provider settings. Default: local only."
    )
    defaults: Defaults = Field(
        default_factory=Defaults,
        description="Defaults for every resource. Default: local provider, no labels.",
    )
    pricing: Pricing = Field(
        default_factory=Pricing,
        description="Prices used for cost estimates. Default: USD, 0.04 per CPU-hour.",
    )
    registry: Registry = Field(
        default_factory=Registry, description="Model registry. Default: local."
    )
    policy: Policy = Field(default_factory=Policy, description="Plan-time policy. Default: none.")
    lineage: Lineage | None = Field(
        None,
        description="Where apply sends OpenLineage run events (START, COMPLETE, FAIL) for "
        "Dataset snapshots, FeatureSet materialisations and TrainingJob runs: a file, an HTTP "
        "endpoint, or both; see docs/audit.md. Default: none (no events).",
        json_schema_extra=TRUSTED,
    )


class Workspace(Document):
    KIND = "Workspace"
    KEEP_VIEW = True
    kind: Literal["Workspace"] = Field(description="Workspace. Required.")
    spec: WorkspaceSpec = Field(
        default_factory=WorkspaceSpec,
        description="Workspace settings. Default: every setting's own default.",
    )
