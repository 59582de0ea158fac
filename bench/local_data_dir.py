"""The local stack's data directory: what a snapshot costs, beside moto's own pickling of the same state.

moto's backends (in-process, `mock_aws`) hold N S3 objects of B bytes each in a versioned bucket,
a queue with M messages and a DynamoDB table with N items. Measured, median of --runs:

- baseline: `pickle.dumps` of the S3 backend as moto pickles it (every body inline, what a naive
  snapshot would write each time; SQS cannot be pickled plainly, its queues hold locks);
- first snapshot: `DataDir.snapshot(force=True)` of S3, SQS, DynamoDB and Glue on a fresh
  directory (every body hashed and written once as a blob, the metadata pickled, the file fsynced);
- next snapshot: after one more PutObject (the bodies already written are not read again; only the
  metadata is pickled again);
- restore: loading the snapshot back into emptied backends (bodies read from the blobs);
- snapshot after a restart: the first one on the restored state (bodies known by their blobs).

    .venv/bin/python bench/local_data_dir.py [--objects 2000] [--bytes 20000] [--runs 5]
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import boto3
from moto import mock_aws
from moto.backends import get_backend
from moto.core.base_backend import BackendDict

from signals.local.persist import PERSISTED_SERVICES, DataDir, Gate

REGION = "us-west-2"


def fill(session: boto3.Session, objects: int, size: int, messages: int) -> None:
    s3, sqs, dynamodb = session.client("s3"), session.client("sqs"), session.client("dynamodb")
    s3.create_bucket(Bucket="lake", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket="lake", VersioningConfiguration={"Status": "Enabled"})
    for index in range(objects):
        body = index.to_bytes(4, "big") * (size // 4)
        s3.put_object(Bucket="lake", Key=f"telemetry_flat/type=lock/day=2026-12-07/hour=03/{index:06d}.parquet",
                      Body=body, Metadata={"rows": "100"})
    url = sqs.create_queue(QueueName="work")["QueueUrl"]
    for index in range(messages):
        sqs.send_message(QueueUrl=url, MessageBody=f"message {index}")
    dynamodb.create_table(TableName="registry", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    for index in range(objects):
        dynamodb.put_item(TableName="registry", Item={"pk": {"S": f"file#{index}"}, "rows": {"N": "100"}})


def timed(action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--bytes", type=int, default=20000)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    baseline, first, following, restore, after_restart, sizes = [], [], [], [], [], []
    with mock_aws():
        session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name=REGION)
        fill(session, args.objects, args.bytes, args.messages)
        for run in range(args.runs):
            baseline.append(timed(lambda: pickle.dumps(get_backend("s3"))))  # type: ignore[call-overload]
            directory = Path(tempfile.mkdtemp(prefix="bench-data-dir-"))
            try:
                data = DataDir(directory, interval=3600)
                data.restore("bench")
                data._gate = Gate()  # what attach() does, without its thread
                first.append(timed(lambda: data.snapshot(force=True)))  # noqa: B023
                session.client("s3").put_object(Bucket="lake", Key=f"late/{run}", Body=b"x" * args.bytes)
                assert data.journal is not None
                data.journal.request("s3", None, "PUT", f"/lake/late/{run}")
                following.append(timed(data.snapshot))
                sizes.append(((directory / "snapshot.pickle").stat().st_size,
                              sum(p.stat().st_size for p in (directory / "blobs").glob("*/*"))))
                data.journal.close()
                BackendDict.reset()
                # The restored state is the live one for the next run.
                again = DataDir(directory, interval=3600)
                restore.append(timed(lambda: again.restore("bench")))  # noqa: B023
                again._gate = Gate()  # and, as attach() does, every service to be pickled again:
                assert again.journal is not None
                again.journal.dirty.update(PERSISTED_SERVICES)
                after_restart.append(timed(lambda: again.snapshot(force=True)))  # noqa: B023
                assert again.journal is not None
                again.journal.close()
            finally:
                shutil.rmtree(directory, ignore_errors=True)
    lake_mb = args.objects * args.bytes / 1e6

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:8.1f} ms"

    print(f"{args.objects} objects x {args.bytes} B ({lake_mb:.1f} MB), {args.messages} messages, "
          f"{args.objects} items; median of {args.runs}")
    print(f"  baseline  moto's own pickle of S3 (bodies inline) {ms(baseline)}")
    print(f"  first snapshot (every body to a blob)          {ms(first)}   "
          f"{statistics.median(first) / statistics.median(baseline):.2f}x baseline")
    print(f"  next snapshot (one more object)                {ms(following)}   "
          f"{statistics.median(following) / statistics.median(baseline):.2f}x baseline")
    print(f"  restore into empty backends                    {ms(restore)}")
    print(f"  first snapshot after a restart                 {ms(after_restart)}   "
          f"{statistics.median(after_restart) / statistics.median(baseline):.2f}x baseline")
    snapshot_bytes, blob_bytes = sizes[-1]
    print(f"  snapshot file {snapshot_bytes / 1e6:.2f} MB, blobs {blob_bytes / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
