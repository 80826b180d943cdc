"""What the three Grafana dashboards show: each view's panels as data, with their PromQL.

Every expression names only metrics that pipeform exports (docs/reference/metrics.md):
the reconciler's (pushed with ``workspace=<name>``, so they are filtered on it), the
trainer's (pushed per ``pipeform_job`` without a workspace label, so they are narrowed to
this Workspace's jobs by ``and on (pipeform_job)`` the reconciler's
``pipeform_training_last_run_info{workspace=...}``), and the SLO recording rules of
``providers.rules``. ``tests/monitoring/test_dashboards.py`` checks each expression with
promtool and cross-checks the metric names against the code that exports them.

No SDK here: ``providers.prometheus.dashboards`` turns these into Grafana JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PanelKind = Literal["stat", "timeseries", "table", "bargauge"]
VIEWS = ("executive", "oncall", "debug")


@dataclass(frozen=True)
class PanelSpec:
    title: str
    description: str
    expr: str
    kind: PanelKind = "timeseries"
    unit: str = ""
    legend: str = ""


@dataclass(frozen=True)
class ViewSpec:
    name: str  # one of VIEWS: the file name and uid part
    title: str
    description: str
    rows: tuple[tuple[str, tuple[PanelSpec, ...]], ...]

    def panels(self) -> list[PanelSpec]:
        return [panel for _, panels in self.rows for panel in panels]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _executive(ws: str, jobs: str) -> ViewSpec:
    runs = "pipeform_training_runs_total"
    rate = (
        f'sum(increase({runs}{{result="succeeded"}}[7d]) and {jobs})'
        f" / sum(increase({runs}[7d]) and {jobs})"
    )
    return ViewSpec(
        "executive",
        "Executive",
        "Training success, cost, approvals and model performance over weeks.",
        (
            (
                "This week",
                (
                    PanelSpec(
                        "Training success rate, last 7 days",
                        "Runs that succeeded over all runs finished in the 7 days before each point (gated and failed runs count against it).",
                        rate,
                        "stat",
                        "percentunit",
                    ),
                    PanelSpec(
                        "Models waiting for approval",
                        "TrainingJobs whose newest version waits for `pipeform approve` (register.approval: required).",
                        f'sum(pipeform_model_versions_awaiting_approval{{workspace="{ws}"}})',
                        "stat",
                        "none",
                    ),
                    PanelSpec(
                        "Cost per model, last 7 days",
                        "Recorded cost of each TrainingJob's runs that finished in the 7 days before the last apply.",
                        f'sum by (pipeform_job, currency) (pipeform_training_cost_week{{workspace="{ws}"}})',
                        "bargauge",
                        "none",
                        "{{pipeform_job}} ({{currency}})",
                    ),
                    PanelSpec(
                        "Budget spent",
                        "Share of each Budget's amount spent in its current period (1 = all of it).",
                        f'pipeform_budget_spent_ratio{{workspace="{ws}"}}',
                        "bargauge",
                        "percentunit",
                        "{{budget}}",
                    ),
                ),
            ),
            (
                "Trends",
                (
                    PanelSpec(
                        "Weekly training success rate",
                        "The 7-day success rate over time.",
                        rate,
                        "timeseries",
                        "percentunit",
                        "success rate",
                    ),
                    PanelSpec(
                        "Cost per model and week",
                        "Recorded cost of each job's runs in the 7 days before each apply.",
                        f'sum by (pipeform_job, currency) (pipeform_training_cost_week{{workspace="{ws}"}})',
                        "timeseries",
                        "none",
                        "{{pipeform_job}} ({{currency}})",
                    ),
                    PanelSpec(
                        "Validation metric change over 7 days",
                        "The last run's validation metric minus its value a week earlier, per job and metric (a performance delta week on week).",
                        f"(pipeform_training_validation_metric - pipeform_training_validation_metric offset 7d) and {jobs}",
                        "timeseries",
                        "none",
                        "{{pipeform_job}} {{metric}}",
                    ),
                    PanelSpec(
                        "Performance delta against the champion",
                        "How much better (positive) or worse each job's last model scored than the version its alias named, on the champion gate's metric and the new validation split (register.championGate).",
                        f"pipeform_training_champion_delta and {jobs}",
                        "timeseries",
                        "none",
                        "{{pipeform_job}} {{metric}}",
                    ),
                    PanelSpec(
                        "SLO error budget remaining",
                        "Share of each SLO's error budget left over its window (recording rules of the SLO documents).",
                        "pipeform_slo:error_budget_remaining:ratio",
                        "timeseries",
                        "percentunit",
                        "{{slo}}",
                    ),
                ),
            ),
        ),
    )


def _oncall(ws: str, jobs: str) -> ViewSpec:
    return ViewSpec(
        "oncall",
        "On-call",
        "What is failing now: runs, data validation, resources, applies and budgets.",
        (
            (
                "Failing now",
                (
                    PanelSpec(
                        "Failing runs",
                        "Each TrainingJob whose newest run did not succeed, with the run id to pass to the run's logs (.pipeform/data/runs/<run id>).",
                        f'pipeform_training_last_run_info{{workspace="{ws}", status!~"succeeded|running"}} == 1',
                        "table",
                        "",
                        "{{pipeform_job}} {{run_id}} {{status}}",
                    ),
                    PanelSpec(
                        "Data validation failures",
                        "Datasets whose last apply failed because validation refused the data.",
                        f'pipeform_dataset_validation_failed{{workspace="{ws}"}} == 1',
                        "table",
                        "",
                        "{{dataset}}",
                    ),
                    PanelSpec(
                        "Failed or tainted resources",
                        "Resources recorded failed or tainted in state.",
                        f'sum(pipeform_resources{{workspace="{ws}", status=~"failed|tainted"}}) or vector(0)',
                        "stat",
                        "none",
                    ),
                    PanelSpec(
                        "Failed applies, last 24 hours",
                        "Applies in which any resource failed.",
                        f'sum(increase(pipeform_apply_total{{workspace="{ws}", result="failed"}}[1d])) or vector(0)',
                        "stat",
                        "none",
                    ),
                ),
            ),
            (
                "Freshness and saturation",
                (
                    PanelSpec(
                        "Time since the last successful apply",
                        "Seconds since an apply finished without failures.",
                        f'time() - pipeform_last_successful_apply_timestamp_seconds{{workspace="{ws}"}}',
                        "stat",
                        "s",
                    ),
                    PanelSpec(
                        "Time since each job's last successful run",
                        "Seconds since the job's last run that succeeded.",
                        f"(time() - pipeform_training_run_last_success_timestamp_seconds) and {jobs}",
                        "bargauge",
                        "s",
                        "{{pipeform_job}}",
                    ),
                    PanelSpec(
                        "Dataset snapshot age",
                        "Seconds since each Dataset's current snapshot was made.",
                        f'time() - pipeform_dataset_last_snapshot_timestamp_seconds{{workspace="{ws}"}}',
                        "bargauge",
                        "s",
                        "{{dataset}}",
                    ),
                    PanelSpec(
                        "Budget saturation",
                        "Share of each Budget spent this period; enforced budgets refuse plans past 1.",
                        f'pipeform_budget_spent_ratio{{workspace="{ws}"}}',
                        "bargauge",
                        "percentunit",
                        "{{budget}}",
                    ),
                    PanelSpec(
                        "Drifted resources",
                        "Resources whose live object differed from state at the last refresh.",
                        f'pipeform_drift_resources{{workspace="{ws}"}}',
                        "stat",
                        "none",
                    ),
                    *_saturation(ws, jobs),
                ),
            ),
            ("Checkpoints", _checkpoints(jobs)),
        ),
    )


def _saturation(ws: str, jobs: str) -> tuple[PanelSpec, ...]:
    """What each job's last run used of what it asked for (rank 0's process)."""
    return (
        PanelSpec(
            "CPU saturation",
            "CPU time of each job's last run over its duration and the cores it asked for (spec.resources.cpu); 1 = every core busy all along.",
            "(pipeform_training_cpu_seconds / pipeform_training_run_duration_seconds)"
            f' / on (pipeform_job) pipeform_training_requested_cpu_cores{{workspace="{ws}"}}',
            "bargauge",
            "percentunit",
            "{{pipeform_job}}",
        ),
        PanelSpec(
            "Memory saturation",
            "Peak resident memory of each job's last run over the memory it asked for (spec.resources.memory).",
            "pipeform_training_peak_memory_bytes"
            f' / on (pipeform_job) pipeform_training_requested_memory_bytes{{workspace="{ws}"}}',
            "bargauge",
            "percentunit",
            "{{pipeform_job}}",
        ),
        PanelSpec(
            "GPU memory saturation",
            "Peak GPU memory each job's last run reserved, as a share of the device's memory (runs on a GPU only).",
            f"pipeform_training_gpu_memory_peak_ratio and {jobs}",
            "bargauge",
            "percentunit",
            "{{pipeform_job}}",
        ),
    )


def _checkpoints(jobs: str) -> tuple[PanelSpec, ...]:
    return (
        PanelSpec(
            "Checkpoint failures",
            "Checkpoints of each job's last run that could not be written (write) or were found damaged or unusable when it resumed (resume).",
            f"pipeform_training_checkpoint_failures and {jobs}",
            "bargauge",
            "none",
            "{{pipeform_job}} {{stage}}",
        ),
        PanelSpec(
            "Time since the last good checkpoint",
            "Seconds since each job's newest good checkpoint was written: where a failed run resumes from.",
            f"(time() - pipeform_training_last_checkpoint_timestamp_seconds) and {jobs}",
            "bargauge",
            "s",
            "{{pipeform_job}}",
        ),
        PanelSpec(
            "Step of the last good checkpoint",
            "Global training step of each job's newest good checkpoint.",
            f"pipeform_training_last_checkpoint_step and {jobs}",
            "table",
            "none",
            "{{pipeform_job}}",
        ),
    )


def _debug(ws: str, jobs: str) -> ViewSpec:
    metric = "pipeform_training_validation_metric"
    return ViewSpec(
        "debug",
        "Debug",
        "Per-run training figures, registrations, retrain triggers and changes.",
        (
            (
                "Runs",
                (
                    PanelSpec(
                        "Recent runs",
                        "Each job's newest run: id and status.",
                        f'pipeform_training_last_run_info{{workspace="{ws}"}} == 1',
                        "table",
                        "",
                        "{{pipeform_job}} {{run_id}} {{status}}",
                    ),
                    PanelSpec(
                        "Validation loss per run",
                        "The loss on the validation split of each job's last run, over time (one point per run).",
                        f'{metric}{{metric="loss"}} and {jobs}',
                        "timeseries",
                        "none",
                        "{{pipeform_job}}",
                    ),
                    PanelSpec(
                        "Validation metrics per run",
                        "Every other validation metric of each job's last run.",
                        f'{metric}{{metric!="loss"}} and {jobs}',
                        "timeseries",
                        "none",
                        "{{pipeform_job}} {{metric}}",
                    ),
                    PanelSpec(
                        "Training throughput",
                        "Samples per second of each job's last run.",
                        f"pipeform_training_samples_per_second and {jobs}",
                        "timeseries",
                        "none",
                        "{{pipeform_job}}",
                    ),
                    PanelSpec(
                        "Run duration",
                        "Seconds each job's last run took.",
                        f"pipeform_training_run_duration_seconds and {jobs}",
                        "timeseries",
                        "s",
                        "{{pipeform_job}}",
                    ),
                    PanelSpec(
                        "Step time, 99th percentile",
                        "Time of a training step (forward, backward, optimizer) of each job's last run: 99% of its steps were faster.",
                        "histogram_quantile(0.99, sum by (pipeform_job, le) "
                        f"(pipeform_training_batch_seconds_bucket and {jobs}))",
                        "timeseries",
                        "s",
                        "{{pipeform_job}}",
                    ),
                    PanelSpec(
                        "Mean step time",
                        "Mean time of a training step of each job's last run.",
                        "(pipeform_training_batch_seconds_sum / pipeform_training_batch_seconds_count)"
                        f" and {jobs}",
                        "timeseries",
                        "s",
                        "{{pipeform_job}}",
                    ),
                ),
            ),
            (
                "Data",
                (
                    PanelSpec(
                        "Drift per column (PSI)",
                        "PSI of each column of each Dataset's current snapshot against the snapshot before it (the columns spec.validation.drift checks).",
                        f'pipeform_dataset_drift_psi{{workspace="{ws}"}}',
                        "timeseries",
                        "none",
                        "{{dataset}} {{column}}",
                    ),
                ),
            ),
            (
                "Registry and retraining",
                (
                    PanelSpec(
                        "Time to register",
                        "Seconds from the start of each job's newest registered run to its model version being registered.",
                        f'pipeform_registration_duration_seconds{{workspace="{ws}"}}',
                        "timeseries",
                        "s",
                        "{{pipeform_job}}",
                    ),
                    PanelSpec(
                        "Versions waiting for approval",
                        "1 while the job's newest version waits for `pipeform approve`.",
                        f'pipeform_model_versions_awaiting_approval{{workspace="{ws}"}}',
                        "timeseries",
                        "none",
                        "{{pipeform_job}}",
                    ),
                    PanelSpec(
                        "Retrain triggers by outcome",
                        "Retrains that `retrain: {on: drift}` triggered, by whether the new model beat the one it replaced.",
                        f'sum by (pipeform_job, useful) (pipeform_retrain_triggers{{workspace="{ws}"}})',
                        "timeseries",
                        "none",
                        "{{pipeform_job}} useful={{useful}}",
                    ),
                    PanelSpec(
                        "Retrain trigger accuracy",
                        "Share of triggered retrains whose model beat the one it replaced.",
                        f'pipeform_retrain_trigger_accuracy_ratio{{workspace="{ws}"}}',
                        "timeseries",
                        "percentunit",
                        "{{pipeform_job}}",
                    ),
                    PanelSpec(
                        "Resources changed per hour",
                        "Resources applies changed, by action.",
                        f'sum by (action) (increase(pipeform_resources_changed_total{{workspace="{ws}"}}[1h]))',
                        "timeseries",
                        "none",
                        "{{action}}",
                    ),
                ),
            ),
        ),
    )


def views(workspace: str) -> list[ViewSpec]:
    """The executive, on-call and debug views of one Workspace."""
    ws = _quote(workspace)
    jobs = f'on (pipeform_job) pipeform_training_last_run_info{{workspace="{ws}"}}'
    return [_executive(ws, jobs), _oncall(ws, jobs), _debug(ws, jobs)]
