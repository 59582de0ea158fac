"""Failure paths of the local stack: poison messages, a partition dropped from Glue."""

from __future__ import annotations

import json
import time

from signals.env import Environment, Output
from signals.local.stack import LocalStack
from tests.e2e.local.conftest import API_KEY, post, sql, wait_for


def test_poison_message_reaches_the_dlq_after_max_receive_count(stack: LocalStack) -> None:
    sqs = stack.client("sqs")
    queue_url = stack.outputs[Output.TELEMETRY_QUEUE_URL]
    dlq_url = stack.outputs[Output.TELEMETRY_DLQ_URL]
    sqs.send_message(QueueUrl=queue_url, MessageBody="this is not an S3 notification")

    def in_dlq() -> list[dict[str, object]]:
        return sqs.receive_message(QueueUrl=dlq_url, VisibilityTimeout=0, AttributeNames=["All"]).get("Messages", [])

    assert wait_for(lambda: bool(in_dlq()), timeout=40)
    message = in_dlq()[0]
    assert message["Body"] == "this is not an S3 notification"
    assert int(message["Attributes"]["ApproximateReceiveCount"]) >= 5  # type: ignore[index]
    queue = stack.wiring.queue_by_name("telemetry-processing-queue") if stack.wiring else None
    assert queue is not None
    assert queue.max_receive_count == 5
    assert sum(stack.queue_depths()["telemetry-processing-queue"]) == 0


def test_partition_dropped_from_glue_is_invisible_until_the_reconciler_restores_it(
    stack: LocalStack, env: Environment
) -> None:
    now = int(time.time() * 1000)
    events = [{"event_id": f"glue-{i}", "device_id": "glue-doorbell", "device_type": "video_doorbell",
               "event_name": "ring", "event_time": now, "button_pressed": True} for i in range(7)]
    status, _ = post(stack, "/v1/telemetry", json.dumps(events).encode(),
                     {"x-api-key": API_KEY, "content-type": "application/json"})
    assert status == 200
    assert stack.wait_until_drained(60)
    count_sql = "SELECT count(*) FROM telemetry_video_doorbell_flat WHERE device_id = 'glue-doorbell'"
    assert sql(env, count_sql).rows == [(7,)]
    day, hour = sql(env, "SELECT day, hour FROM telemetry_video_doorbell_flat "
                         "WHERE device_id = 'glue-doorbell' LIMIT 1").rows[0]

    glue = stack.client("glue")
    database = stack.outputs[Output.GLUE_DATABASE]
    reconciler = stack.schedule_of("reconciler")
    reconciler.pause()  # so it cannot restore the partition before the query below looks
    try:
        glue.delete_partition(DatabaseName=database, TableName="telemetry_video_doorbell_flat",
                              PartitionValues=[day, hour])
        assert sql(env, count_sql).rows == [(0,)]  # files still in S3, but Glue no longer lists them
    finally:
        reconciler.resume()

    # The reconciler runs every 3 s in this stack (--reconcile-seconds) and recreates the partition.
    assert wait_for(lambda: sql(env, count_sql).rows == [(7,)], timeout=30)
