"""Dataset snapshots on the local provider: reading sources, validating them, storing them.

``readers`` opens a source by URI scheme and streams it as Arrow record batches;
``validate`` checks a Dataset's rules over those batches in one pass; ``drift`` keeps the
histograms that population stability (PSI) compares; ``snapshot`` writes the validated
batches into an immutable, content-addressed parquet snapshot. ``providers.local.dataset``
is the handler that drives them. pyarrow and numpy are imported by these modules only,
never at import time of the CLI.
"""

from __future__ import annotations

#: bump when reading or conversion changes what a snapshot holds: it is part of every
#: snapshot id, so a new reader makes new snapshots instead of reusing old ones
READER_VERSION = "1"

__all__ = ["READER_VERSION"]
