"""Losing S3 event notifications where they are made: in moto's S3, before they reach SQS.

S3 delivers ObjectCreated notifications at least once, and now and then not at all (AWS documents
that notifications are typically delivered in seconds "but can sometimes take a minute or longer",
and the pipeline's reconciler exists because some never arrive). moto sends them from
`moto.s3.notifications.send_event`, called by its S3 backend for each object written; the tap
wraps that function while a campaign runs and swallows the next N ObjectCreated notifications of
a bucket. The object itself is written as usual. `uninstall` puts moto's function back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class NotificationTap:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._to_drop: dict[str, int] = {}  # bucket -> notifications still to swallow
        self.dropped: list[tuple[str, str]] = []  # (bucket, key)
        self._original: Callable[..., None] | None = None

    def install(self) -> None:
        from moto.s3 import notifications  # noqa: PLC0415 (moto loads with the local stack)

        if self._original is not None:
            return
        self._original = notifications.send_event
        original = self._original

        def send_event(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
            if self._swallow(str(getattr(bucket, "name", "")), str(getattr(key, "name", "")),
                            str(getattr(event_name, "value", event_name))):
                return
            original(account_id, event_name, bucket, key)

        notifications.send_event = send_event

    def uninstall(self) -> None:
        from moto.s3 import notifications  # noqa: PLC0415

        if self._original is not None:
            notifications.send_event = self._original
            self._original = None

    def drop_next(self, bucket: str, count: int) -> None:
        with self._lock:
            self._to_drop[bucket] = self._to_drop.get(bucket, 0) + count

    def clear(self) -> None:
        with self._lock:
            self._to_drop.clear()

    def _swallow(self, bucket: str, key: str, event_name: str) -> bool:
        if "ObjectCreated" not in event_name:
            return False
        with self._lock:
            left = self._to_drop.get(bucket, 0)
            if left <= 0:
                return False
            self._to_drop[bucket] = left - 1
            self.dropped.append((bucket, key))
            return True
