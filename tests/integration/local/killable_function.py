"""A function module for the kill tests: writes OUTPUTS objects, then its record item, in that order."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

BUILDS: list[int] = []


def build_handler(environ: Mapping[str, str], clients: Any) -> Callable[[dict[str, Any], Any], Any]:
    BUILDS.append(1)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        s3 = clients.client("s3")
        for index in range(int(event["outputs"])):
            with contextlib.suppress(Exception):  # a handler that swallows errors still cannot swallow a kill
                s3.put_object(Bucket="out", Key=f"{event['name']}-{index}", Body=b"x")
        with ThreadPoolExecutor(2) as pool:  # calls from the handler's own threads stop too
            list(pool.map(lambda n: s3.put_object(Bucket="out", Key=f"{event['name']}-pool-{n}", Body=b"y"), (0, 1)))
        s3.put_object(Bucket="out", Key=f"{event['name']}-record", Body=b"done")
        return {"ok": True}

    return handler
