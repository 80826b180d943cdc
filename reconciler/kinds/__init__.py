"""Spec models for every kind, and the registry mapping kind names to models."""

from __future__ import annotations

from reconciler.kinds.common import API_VERSION, Document, Metadata, Reference
from reconciler.kinds.data import Dataset, FeatureSet
from reconciler.kinds.observability import SLO, Alert
from reconciler.kinds.platform import Budget, Quota, Secret
from reconciler.kinds.training import TrainingJob
from reconciler.kinds.workspace import Workspace

KINDS: dict[str, type[Document]] = {
    model.KIND: model
    for model in (Workspace, Dataset, FeatureSet, TrainingJob, Quota, Secret, Alert, SLO, Budget)
}

__all__ = [
    "API_VERSION",
    "KINDS",
    "SLO",
    "Alert",
    "Budget",
    "Dataset",
    "Document",
    "FeatureSet",
    "Metadata",
    "Quota",
    "Reference",
    "Secret",
    "TrainingJob",
    "Workspace",
]
