"""The applier: graph order, parallelism, retries, per-resource persistence; the reconciler's metrics."""
