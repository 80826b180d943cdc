"""Audit: the journal's history and chain, lineage of model versions, verification of
recorded inputs, diffs between spec commits, and OpenLineage events."""
