"""Entity keys: the uniqueness check, with and without its fast path for increasing keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from providers.local.data.features import FeatureError, parse_spec
from providers.local.data.features_build import materialise

RANDOM = {"type": "random", "validationFraction": 0.5, "seed": 1}
TEMPORAL = {"type": "temporal", "column": "t", "validationFrom": 1}


def build(tmp_path: Path, columns: dict[str, list[Any]], entity: list[str], split: Any) -> Any:
    n = len(next(iter(columns.values())))
    source = tmp_path / "s.parquet"
    pq.write_table(
        pa.table({**columns, "t": [i % 2 for i in range(n)], "x": [1.0] * n, "y": [0] * n}),
        source,
    )
    spec = parse_spec(
        {"dataset": "d", "entity": entity, "label": {"column": "y"},
         "features": [{"name": "x"}], "split": split}
    )  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    return materialise(spec, source, "ds-k", "fs-k", out, batch_rows=4)


@pytest.mark.parametrize("split", [TEMPORAL, RANDOM], ids=["temporal", "random"])
def test_a_key_that_turns_back_in_a_later_batch_is_refused(tmp_path: Path, split: Any) -> None:
    ids = [0, 1, 2, 3, 4, 5, 6, 2, 9]  # increasing within each batch of 4, not across
    with pytest.raises(FeatureError, match=r"entity key \(id\) is not unique.*\(2,\) appears 2"):
        build(tmp_path, {"id": ids}, ["id"], split)


@pytest.mark.parametrize("split", [TEMPORAL, RANDOM], ids=["temporal", "random"])
def test_a_repeated_composite_key_is_refused(tmp_path: Path, split: Any) -> None:
    columns = {"a": [1, 1, 2, 2, 3, 1], "b": ["x", "y", "x", "y", "x", "y"]}
    with pytest.raises(FeatureError, match=r"entity key \(a, b\) is not unique.*\(1, 'y'\)"):
        build(tmp_path, columns, ["a", "b"], split)


@pytest.mark.parametrize("split", [TEMPORAL, RANDOM], ids=["temporal", "random"])
def test_unique_keys_in_any_order_are_accepted(tmp_path: Path, split: Any) -> None:
    for ids in ([10, 20, 30, 40, 50, 60], [60, 10, 50, 20, 40, 30], [-5, -4, 0, 7, 8, 100]):
        (tmp_path / str(ids[1])).mkdir()
        manifest = build(tmp_path / str(ids[1]), {"id": ids}, ["id"], split)
        assert sum(manifest["rows"].values()) == 6
