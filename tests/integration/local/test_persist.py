"""The data directory's snapshots of moto's backends: what goes in comes back, bodies stored once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.core.base_backend import BackendDict

from signals.local.persist import DataDir, Gate, is_mutating, read_journal

REGION = "us-west-2"


@pytest.fixture
def session() -> Iterator[boto3.Session]:
    with mock_aws():
        yield boto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name=REGION)


def fill(session: boto3.Session) -> str:
    s3, sqs, dynamodb, glue = (session.client(n) for n in ("s3", "sqs", "dynamodb", "glue"))
    s3.create_bucket(Bucket="lake", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket="lake", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="lake", Key="a/one", Body=b"x" * 100_000, Metadata={"rows": "3"})
    s3.put_object(Bucket="lake", Key="a/one", Body=b"second version")
    s3.put_object(Bucket="lake", Key="b/same", Body=b"x" * 100_000)  # same body as a/one's first version
    url = sqs.create_queue(QueueName="work")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    dynamodb.create_table(TableName="registry", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    dynamodb.put_item(TableName="registry", Item={"pk": {"S": "file#1"}, "rows": {"N": "3"}})
    glue.create_database(DatabaseInput={"Name": "db"})
    glue.create_table(DatabaseName="db", TableInput={"Name": "t", "Parameters": {"metadata_location": "s3://m/1"},
                                                     "PartitionKeys": [{"Name": "day", "Type": "string"}]})
    glue.create_partition(DatabaseName="db", TableName="t", PartitionInput={"Values": ["2026-12-07"]})
    return str(url)


def test_a_snapshot_restores_objects_versions_messages_items_and_the_catalog(session: boto3.Session,
                                                                           tmp_path: Path) -> None:
    url = fill(session)
    data = DataDir(tmp_path, interval=3600)
    data.restore("digest")
    data.attach(Gate(), None)  # takes the first snapshot
    data.stop()
    blobs = list((tmp_path / "blobs").glob("*/*"))
    assert len(blobs) == 2  # the 100 KB body once, however many keys hold it, and the second version

    BackendDict.reset()  # what a new process starts with
    s3 = session.client("s3")
    assert s3.list_buckets()["Buckets"] == []

    restored = DataDir(tmp_path)
    report, buffers = restored.restore("digest")
    assert report.restored
    assert report.clean_stop
    assert buffers == {}
    assert s3.get_object(Bucket="lake", Key="a/one")["Body"].read() == b"second version"
    versions = s3.list_object_versions(Bucket="lake", Prefix="a/one")["Versions"]
    assert len(versions) == 2
    [first] = [v for v in versions if not v["IsLatest"]]
    old = s3.get_object(Bucket="lake", Key="a/one", VersionId=first["VersionId"])
    assert (old["Body"].read(), old["Metadata"]) == (b"x" * 100_000, {"rows": "3"})
    messages = session.client("sqs").receive_message(QueueUrl=url)["Messages"]
    assert [m["Body"] for m in messages] == ["hello"]
    item = session.client("dynamodb").get_item(TableName="registry", Key={"pk": {"S": "file#1"}})["Item"]
    assert item["rows"] == {"N": "3"}
    glue = session.client("glue")
    assert glue.get_table(DatabaseName="db", Name="t")["Table"]["Parameters"] == {"metadata_location": "s3://m/1"}
    assert [p["Values"] for p in glue.get_partitions(DatabaseName="db", TableName="t")["Partitions"]] == [
        ["2026-12-07"]]
    # A change after the restore reaches the next snapshot; a deleted body's blob is removed on stop.
    restored.attach(Gate(), None)
    s3.delete_object(Bucket="lake", Key="b/same")
    restored.journal.request("s3", None, "DELETE", "/lake/b/same")  # type: ignore[union-attr]
    assert restored.snapshot()
    restored.stop()
    assert len(list((tmp_path / "blobs").glob("*/*"))) == 2  # a/one's first version still holds the body


def test_a_kill_leaves_a_journal_the_next_start_reports_and_replays(session: boto3.Session, tmp_path: Path) -> None:
    fill(session)
    data = DataDir(tmp_path, interval=3600)
    data.restore("digest")
    data.attach(Gate(), None)
    assert data.journal is not None
    data.journal.request("s3", None, "PUT", "/lake/raw/late.gz")
    data.journal.firehose("stream", [b'{"a":1}\n{"a":2}\n'])
    # No stop: the process "dies" here (the journal was flushed line by line).
    BackendDict.reset()
    report, buffers = DataDir(tmp_path).restore("digest")
    assert not report.clean_stop
    assert report.lost == {"s3 PUT": 1}
    assert report.lost_s3_keys == ["lake/raw/late.gz"]
    assert (report.firehose_replayed, report.lines_replayed) == (1, 2)
    assert [records for records, _first in buffers["stream"]] == [[b'{"a":1}\n{"a":2}\n']]
    assert any("lost requests: s3 PUT 1" in line for line in report.lines())


def test_a_snapshot_waits_for_changing_requests_and_holds_new_ones() -> None:
    gate = Gate()
    order: list[str] = []
    with gate.shared():
        taker = threading.Thread(target=lambda: (gate.exclusive().__enter__(), order.append("snapshot")))
        taker.start()
        time.sleep(0.2)
        order.append("request done")
    taker.join(5)
    assert order == ["request done", "snapshot"]


@pytest.mark.parametrize(("service", "operation", "method", "changes"), [
    ("s3", None, "GET", False), ("s3", None, "HEAD", False), ("s3", None, "PUT", True), ("s3", None, "DELETE", True),
    ("s3", None, "POST", True), ("sqs", "SendMessage", "POST", True), ("sqs", "ReceiveMessage", "POST", False),
    ("sqs", "GetQueueAttributes", "POST", False), ("dynamodb", "Query", "POST", False),
    ("dynamodb", "UpdateItem", "POST", True), ("glue", "BatchCreatePartition", "POST", True),
    ("glue", "GetPartitions", "POST", False),
])
def test_which_requests_change_state(service: str, operation: str | None, method: str, changes: bool) -> None:
    assert is_mutating(service, operation, method) is changes


def test_a_torn_last_journal_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"seq": 1, "service": "s3", "op": "PUT"}\n{"seq": 2, "serv')
    assert [entry["seq"] for entry in read_journal(path)] == [1]


def test_a_directory_a_running_stack_uses_is_refused_even_with_fresh(tmp_path: Path) -> None:
    import json  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "meta.json").write_text(json.dumps({"format": 1, "pid": other.pid, "clean_stop": False}))
        (tmp_path / "snapshot.pickle").write_bytes(b"kept")
        with pytest.raises(RuntimeError, match=f"in use by a running local stack \\(pid {other.pid}\\)"):
            DataDir(tmp_path).wipe()
        with pytest.raises(RuntimeError, match="in use"):
            DataDir(tmp_path).restore("digest")
        assert (tmp_path / "snapshot.pickle").read_bytes() == b"kept"
    finally:
        other.kill()
        other.wait()
