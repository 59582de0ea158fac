"""What the operator commands share: `--env/--profile`, time arguments, S3 listing, colour."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TextIO

from botocore.config import Config

from shared.layout import Partition, raw_prefix
from signals.env import ENVIRONMENTS, Environment, EnvironmentNotFound, resolve

CLIENT_CONFIG: Final = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=16,
                              connect_timeout=5, read_timeout=30)


class EnvClients:
    """One boto3 client per service for an env, created under a lock.

    boto3 sessions are not thread-safe while creating clients, and building one takes milliseconds
    (the first of a service far more); the checks run in threads and ask for the same few services
    dozens of times.
    """

    def __init__(self, env: Environment) -> None:
        self._env = env
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        with self._lock:
            found = self._clients.get(service)
            if found is None:
                found = self._env.session.client(  # type: ignore[call-overload]
                    service, endpoint_url=self._env.endpoint_url, config=CLIENT_CONFIG)
                self._clients[service] = found
            return found


def add_env_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="local", choices=ENVIRONMENTS,
                        help="which pipeline: the running local stack (default) or a deployed env")
    parser.add_argument("--profile", default=None,
                        help="AWS profile for a deployed env (default platform-<env>)")


def environment_from_args(args: argparse.Namespace) -> Environment | None:
    """The env the arguments name, or None after printing why it cannot be reached."""
    try:
        return resolve(args.env, args.profile)
    except EnvironmentNotFound as exc:
        print(f"signals: {exc}", file=sys.stderr)
    except Exception as exc:  # botocore errors: no credentials, no such stack, expired SSO session
        print(f"signals: cannot resolve env {args.env!r}: {exc}", file=sys.stderr)
    return None


def parse_time(text: str) -> datetime:
    """ISO 8601, at least to the hour (`2026-11-25T19`); no offset means UTC. argparse `type=`."""
    if len(text) < len("YYYY-MM-DDTHH"):
        raise argparse.ArgumentTypeError(f"{text!r}: give a time at least to the hour, e.g. 2026-11-25T19")
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-25T19)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def hour_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hours_between(first: datetime, last: datetime) -> list[datetime]:
    """Every UTC hour from the one holding `first` to the one holding `last`, both included."""
    hour, end = hour_start(first), hour_start(last)
    hours: list[datetime] = []
    while hour <= end:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def hour_label(hour: datetime) -> str:
    return hour.strftime("%Y-%m-%dT%H")


def partition_of(hour: datetime) -> Partition:
    return Partition.from_datetime(hour)


def raw_hour_prefix(source: str, hour: datetime) -> str:
    """`raw/{source}/YYYY/MM/DD/HH/`: where Firehose lands the objects that arrived in that hour."""
    return f"{raw_prefix(source)}{hour.astimezone(UTC).strftime('%Y/%m/%d/%H')}/"


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def format_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


_COLOURS = {"ok": "\033[32m", "warn": "\033[33m", "fail": "\033[31m", "bold": "\033[1m"}
_RESET = "\033[0m"


def use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def paint(text: str, colour: str, enabled: bool) -> str:
    return f"{_COLOURS[colour]}{text}{_RESET}" if enabled else text
