"""Bad configuration and a cluster that refuses: one clear error each, through the CLI,
exit 1, no traceback, and nothing applied (the apply's checks run before any change)."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest

from tests.kubernetes.cluster import NAMESPACE, Cluster, pipeform
from tests.kubernetes.conftest import write_kubeconfig

DOCUMENTS = """
    apiVersion: pipeform/v1
    kind: Quota
    metadata: {name: team-a}
    spec: {cpu: 4, gpus: 2}
    ---
    apiVersion: pipeform/v1
    kind: Alert
    metadata: {name: errors-high}
    spec: {expr: 'sum(rate(http_errors_total[5m])) > 1'}
    """


def tree(root: Path, workspace: str, documents: str = DOCUMENTS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipeform.yaml").write_text(workspace)
    (root / "kube.yaml").write_text(textwrap.dedent(documents).lstrip())
    return root


def refused(root: Path, *extra: str) -> str:
    """apply's output, which must be a clean failure."""
    result = pipeform("apply", "--auto-approve", *extra, str(root))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result.output


def nothing_made(cluster: Cluster) -> None:
    server = cluster.server
    assert server.objects("", "v1", "resourcequotas") == []
    assert server.objects("monitoring.coreos.com", "v1", "prometheusrules") == []


def with_kubeconfig(cluster: Cluster, path: Path, **settings: str) -> str:
    return cluster.workspace(**settings).replace(str(cluster.kubeconfig), str(path))


def test_a_kubeconfig_that_is_not_yaml(kube_cluster: Cluster, tmp_path: Path) -> None:
    broken = tmp_path / "broken-kubeconfig"
    broken.write_text("apiVersion: v1\nclusters: [\n  - name: x\n")
    output = refused(tree(tmp_path / "t", with_kubeconfig(kube_cluster, broken)))
    assert f"{broken}:" in output
    assert "not valid YAML" in output
    assert "Nothing was changed." in output
    nothing_made(kube_cluster)


def test_a_kubeconfig_without_contexts(kube_cluster: Cluster, tmp_path: Path) -> None:
    empty = tmp_path / "empty-kubeconfig"
    empty.write_text("apiVersion: v1\nkind: Config\nclusters: []\nusers: []\n")
    output = refused(tree(tmp_path / "t", with_kubeconfig(kube_cluster, empty)))
    assert f"{empty}: the kubeconfig has no valid contexts list" in output
    nothing_made(kube_cluster)


def test_a_kubeconfig_that_is_missing(kube_cluster: Cluster, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "kubeconfig"
    output = refused(tree(tmp_path / "t", with_kubeconfig(kube_cluster, missing)))
    assert f"{missing}: the kubeconfig file does not exist" in output


def test_an_unknown_context_lists_the_known_ones(kube_cluster: Cluster, tmp_path: Path) -> None:
    output = refused(tree(tmp_path / "t", kube_cluster.workspace(context="prod")))
    assert "there is no context 'prod' in the kubeconfig (known: test)" in output
    nothing_made(kube_cluster)


def test_refused_credentials_name_the_server(kube_cluster: Cluster, tmp_path: Path) -> None:
    wrong = write_kubeconfig(tmp_path / "wrong", kube_cluster.server.url, "not-the-token")
    output = refused(tree(tmp_path / "t", with_kubeconfig(kube_cluster, wrong)))
    assert f"the credentials were refused by {kube_cluster.server.url}" in output
    assert output.count("credentials were refused") == 1, "reported once, not per object"
    nothing_made(kube_cluster)


def test_a_forbidden_verb_is_named_with_the_rbac_docs(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    kube_cluster.server.enforce_rules(
        [
            {"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["get", "list"]},
            {"apiGroups": ["monitoring.coreos.com"], "resources": ["*"], "verbs": ["*"]},
        ]
    )
    output = refused(tree(tmp_path / "t", kube_cluster.workspace()))
    assert (
        "does not allow pipeform to patch resourcequotas (API group core) in namespace 'ml'"
        in output
    )
    assert "docs/kubernetes-rbac.yaml" in output
    assert "Nothing was changed." in output
    nothing_made(kube_cluster)  # the PrometheusRule, which was allowed, was not made either


def test_an_unreachable_server_names_its_url(kube_cluster: Cluster, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    dead = write_kubeconfig(tmp_path / "dead", url, kube_cluster.server.token)
    output = refused(tree(tmp_path / "t", with_kubeconfig(kube_cluster, dead)))
    assert f"cannot reach the Kubernetes API server at {url}" in output
    assert output.count("cannot reach") == 1


def test_an_unreachable_server_at_refresh_is_one_error(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    root = tree(tmp_path / "t", kube_cluster.workspace())
    assert pipeform("apply", "--auto-approve", str(root)).exit_code == 0
    url = kube_cluster.server.url
    kube_cluster.server.stop()
    result = pipeform("plan", str(root))
    assert result.exit_code == 1
    assert f"cannot reach the Kubernetes API server at {url}" in result.output
    assert "Traceback" not in result.output


def test_a_namespace_that_does_not_exist(kube_cluster: Cluster, tmp_path: Path) -> None:
    documents = DOCUMENTS.replace("spec: {cpu: 4, gpus: 2}", "spec: {cpu: 4, namespace: research}")
    workspace = kube_cluster.workspace(namespaces="[research]")
    output = refused(tree(tmp_path / "t", workspace, documents))
    assert "namespace 'research' does not exist" in output
    assert "kubectl create namespace research" in output
    nothing_made(kube_cluster)


@pytest.mark.parametrize(
    ("document", "where", "message"),
    [
        (
            "kind: Quota\nmetadata: {name: q}\nspec: {cpu: 1, namespace: elsewhere}\n",
            "kube.yaml:4:27",
            "namespace 'elsewhere' is not one the Workspace allows (ml)",
        ),
        (
            "kind: Secret\nmetadata: {name: s}\nspec:\n  from: {env: X}\n"
            "  targets: [{provider: kubernetes, name: Not_A_Name}]\n",
            "kube.yaml:6:",
            "Secret 'Not_A_Name': the name is not a DNS-1123 subdomain",
        ),
        (
            "kind: Secret\nmetadata: {name: s}\nspec:\n  from: {env: X}\n"
            "  targets: [{provider: kubernetes, namespace: other}]\n",
            "kube.yaml:6:",
            "namespace 'other' is not one the Workspace allows",
        ),
        (
            "kind: Secret\nmetadata: {name: s}\nspec:\n  from: {env: X}\n"
            "  targets: [{provider: kubernetes}, {provider: local}]\n",
            "kube.yaml:6:",
            "spec.targets[1] asks for provider local beside kubernetes targets",
        ),
        (
            "kind: Secret\nmetadata: {name: s}\nspec:\n  from: {env: X}\n"
            "  targets: [{provider: kubernetes}, {provider: aws}]\n",
            "kube.yaml:6:",
            "spec.targets[1] asks for provider aws, but this Secret is realised by the "
            "kubernetes provider",
        ),
    ],
)
def test_plan_refuses_what_the_cluster_would_with_file_and_line(
    kube_cluster: Cluster, tmp_path: Path, document: str, where: str, message: str
) -> None:
    root = tree(tmp_path / "t", kube_cluster.workspace(), "apiVersion: pipeform/v1\n" + document)
    kube_cluster.server.reset_requests()
    result = pipeform("plan", str(root))
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert where in result.output
    assert kube_cluster.server.requests == [], "plan-time checks ask the cluster nothing"


def test_what_the_schemas_do_not_check_is_checked_in_every_manifest() -> None:
    from providers.kubernetes.validation import manifest_problems

    manifest = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {
            "name": "a" * 254,
            "namespace": "Upper",
            "labels": {"team": "x" * 64, "bad key!": "v", "ok": "-dash"},
        },
        "spec": {"hard": {"requests.cpu": "two", "limits.memory": "8Gi", "pods": True}},
    }
    found = dict((message, where) for where, message in manifest_problems(manifest))
    shown = "\n".join(found)
    assert "the name is 254 characters long; a DNS-1123 subdomain has at most 253" in shown
    assert "the namespace 'Upper' is not a DNS-1123 label" in shown
    assert "label team value is 64 characters long; label values have at most 63" in shown
    assert "label key 'bad key!' is not a valid label name" in shown
    assert "label ok value '-dash' may hold only" in shown
    assert "spec.hard.requests.cpu: 'two' is not a Kubernetes quantity" in shown
    assert "spec.hard.pods: True is not a quantity" in shown
    assert "limits.memory" not in shown
    assert sorted(set(found.values())) == ["labels", "name", "quantity"]


def test_in_cluster_outside_a_pod(
    kube_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    workspace = kube_cluster.workspace(inCluster="true")
    output = refused(tree(tmp_path / "t", workspace))
    assert "providers.kubernetes.inCluster is set, but pipeform is not running in a pod" in output
    nothing_made(kube_cluster)


def test_the_client_library_loads_only_with_the_first_api_call(tmp_path: Path) -> None:
    """Loading the provider, validating and planning documents import no kubernetes."""
    import subprocess
    import sys

    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from providers.base import PlanRequest, ResourceContext
        from providers.kubernetes import KubernetesProvider
        from tests.conformance.cases import QUOTA
        provider = KubernetesProvider({"namespace": "ml"}, Path("."))
        ctx = ResourceContext.of("Quota/team-a", "", Path("."))
        assert provider.validate(ctx, QUOTA.spec) == []
        plan = provider.plan(PlanRequest(ctx, None, QUOTA.spec, {}, {}))
        assert plan.manifests and plan.manifests[0]["kind"] == "ResourceQuota"
        loaded = sorted(m for m in sys.modules if m == "kubernetes" or m.startswith("kubernetes."))
        print(loaded)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_busy_server_is_asked_again_during_the_checks_and_the_apply(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    server = kube_cluster.server
    server.inject_errors(503, times=1, verb="patch", resource="resourcequotas")  # the dry run
    root = tree(tmp_path / "t", kube_cluster.workspace())
    result = pipeform("apply", "--auto-approve", str(root))
    assert result.exit_code == 0, result.output
    assert server.get("", "v1", "resourcequotas", NAMESPACE, "team-a") is not None
    patches = [r for r in server.requests if r.verb == "patch" and r.resource == "resourcequotas"]
    assert len(patches) == 3  # the dry run refused, the dry run again, the apply
