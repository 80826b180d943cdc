"""A Kubernetes API server written for the tests: the real ``kubernetes`` client talks to
it over HTTP, and tests play the kubelet and controllers through its controls.

``KubeServer`` (server.py) is the entry point; tests/kubernetes/conftest.py starts one per
test and writes a kubeconfig for it.
"""

from __future__ import annotations

from tests.kubernetes.apiserver.auth import Request
from tests.kubernetes.apiserver.resources import RESOURCES, ApiError, Resource
from tests.kubernetes.apiserver.server import TOKEN, USER, KubeServer

__all__ = ["RESOURCES", "TOKEN", "USER", "ApiError", "KubeServer", "Request", "Resource"]
