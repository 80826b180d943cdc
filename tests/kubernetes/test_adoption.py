"""A create retried after a crash adopts what the first one made: pipeform is killed
(SIGKILL) right after the API server made the ResourceQuota and before state recorded
it; the next apply finds the object by its ownership marks and takes it as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.kubernetes.cluster import NAMESPACE, Cluster, pipeform
from tests.kubernetes.test_provider_engine import tree

ONE_QUOTA = """
    apiVersion: pipeform/v1
    kind: Quota
    metadata: {name: team-a}
    spec: {cpu: 4, gpus: 2}
    """
#: the CLI in a child process, with the kubernetes provider registered (the installed
#: entry points may predate it)
MAIN = (
    "import sys; from providers import base; from providers.kubernetes import "
    "KubernetesProvider; base.register(KubernetesProvider); from reconciler.cli import main; "
    "main(sys.argv[1:])"
)


def test_a_create_killed_after_the_server_made_the_object_is_adopted(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    root = tree(tmp_path / "tree", kube_cluster, ONE_QUOTA)
    env = {**os.environ, "PIPEFORM_FAULT": "after-provider-call:Quota/team-a"}
    killed = subprocess.run(
        [sys.executable, "-c", MAIN, "apply", "--auto-approve", str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stdout + killed.stderr
    made = kube_cluster.server.get("", "v1", "resourcequotas", NAMESPACE, "team-a")
    assert made is not None
    uid = made["metadata"]["uid"]

    again = pipeform("apply", "--auto-approve", str(root))
    assert again.exit_code == 0, again.output
    (quota,) = kube_cluster.server.objects("", "v1", "resourcequotas", NAMESPACE)
    assert quota["metadata"]["uid"] == uid, "adopted, not made again"
    assert pipeform("plan", "--detailed-exitcode", str(root)).exit_code == 0
