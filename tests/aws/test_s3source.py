"""s3:// Dataset sources (providers/aws/s3source.py) against moto_server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from providers.aws.s3source import open_s3
from providers.base import PermanentError
from providers.local.data.readers import SourceError
from providers.local.settings import LocalSettings
from reconciler.kinds.data import ColumnType, CsvOptions, DataFormat
from tests.aws import moto

HINTS = [("id", ColumnType("int")), ("score", ColumnType("float"))]


def settings(server: moto.MotoServer, root: Path) -> LocalSettings:
    return LocalSettings.from_config({"workspace": {"aws": server.settings()}}, root)


def bucket(server: moto.MotoServer, **objects: bytes) -> Any:
    s3 = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    for key, body in objects.items():
        s3.put_object(Bucket="data", Key=key.replace("__", "/"), Body=body)
    return s3


def rows(source: Any) -> int:
    return sum(batch.num_rows for batch in source.batches(HINTS))


def test_a_prefix_reads_every_object_once_with_one_header(
    aws: moto.MotoServer, tmp_path: Path
) -> None:
    bucket(aws, part__a_csv=b"id,score\n1,0.5\n2,0.7", part__b_csv=b"id,score\n3,0.1\n")
    source = open_s3("s3://data/part/", DataFormat.CSV, CsvOptions(), settings(aws, tmp_path))
    assert rows(source) == 3
    assert [o["key"] for o in source.record()["objects"]] == ["part/a_csv", "part/b_csv"]
    assert len(source.record()["contentSha256"]) == 64
    assert not any((tmp_path / ".pipeform/data/cache/s3").iterdir())  # staging removed


def test_objects_with_other_headers_under_one_prefix_are_refused(
    aws: moto.MotoServer, tmp_path: Path
) -> None:
    bucket(aws, p__a=b"id,score\n1,0.5\n", p__b=b"score,id\n0.1,3\n")
    source = open_s3("s3://data/p/", DataFormat.CSV, CsvOptions(), settings(aws, tmp_path))
    with pytest.raises(SourceError, match="has another header"):
        rows(source)


def test_the_fingerprint_follows_the_object_without_reading_it(
    aws: moto.MotoServer, tmp_path: Path
) -> None:
    s3 = bucket(aws, t_csv=b"id,score\n1,0.5\n")
    opened = settings(aws, tmp_path)
    first = open_s3("s3://data/t_csv", DataFormat.CSV, CsvOptions(), opened).fingerprint()
    again = open_s3("s3://data/t_csv", DataFormat.CSV, CsvOptions(), opened).fingerprint()
    assert first == again and first.startswith("s3:")
    s3.put_object(Bucket="data", Key="t_csv", Body=b"id,score\n1,0.6\n")
    assert open_s3("s3://data/t_csv", DataFormat.CSV, CsvOptions(), opened).fingerprint() != first


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3://nowhere/t.csv", "bucket 'nowhere' does not exist"),
        ("s3://data/missing.csv", "source s3://data/missing.csv does not exist"),
        ("s3://data/empty/", "holds no objects"),
    ],
)
def test_a_missing_bucket_or_object_is_one_clear_error(
    aws: moto.MotoServer, tmp_path: Path, uri: str, message: str
) -> None:
    bucket(aws)
    source = open_s3(uri, DataFormat.CSV, CsvOptions(), settings(aws, tmp_path))
    with pytest.raises(PermanentError, match=message):
        source.fingerprint()
