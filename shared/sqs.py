"""SendMessageBatch as every sender here needs it: chunks of ten, only failed entries retried."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Final

SQS_BATCH_LIMIT: Final = 10
SEND_ATTEMPTS: Final = 4


def send_message_batches(
    sqs: Any, queue_url: str, bodies: Sequence[str], sleep: Callable[[float], None] = time.sleep
) -> tuple[int, list[str]]:
    """Send every body; failed entries are retried with backoff unless the fault is the sender's.

    Returns (messages sent, one error line per entry that was not sent).
    """
    sent = 0
    errors: list[str] = []
    for start in range(0, len(bodies), SQS_BATCH_LIMIT):
        pending = {str(index): body for index, body in enumerate(bodies[start:start + SQS_BATCH_LIMIT])}
        for attempt in range(SEND_ATTEMPTS):
            response = sqs.send_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": entry_id, "MessageBody": body} for entry_id, body in pending.items()])
            for entry in response.get("Successful", []):
                pending.pop(entry["Id"], None)
                sent += 1
            failures = response.get("Failed", [])
            if not pending:
                break
            if attempt == SEND_ATTEMPTS - 1 or any(f.get("SenderFault") for f in failures):
                errors.extend(f"{f.get('Code')}: {f.get('Message', '')}" for f in failures)
                break
            sleep(0.2 * 2 ** attempt)
    return sent, errors
