"""Bodies: media types, gzip/deflate, already-inflated bodies, and the bounded inflate (gzip bombs)."""

from __future__ import annotations

import gzip
import time
import tracemalloc
import zlib

import pytest

from ingester.encoding import BodyTooLarge, CorruptBody, UnsupportedEncoding, decode_body, media_type

MiB = 1024 * 1024
PAYLOAD = b'{"device_type":"lock","event_id":"e1"}\n' * 2000


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def bomb(inflated_mib: int) -> bytes:
    """One gzip member of zeros: ~1 KB per inflated MiB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MiB)
    return b"".join(compressor.compress(zeros) for _ in range(inflated_mib)) + compressor.flush()


@pytest.mark.parametrize(
    ("header", "expected"),
    [("application/json", "application/json"), ("Application/JSON; charset=utf-8", "application/json"),
     (" application/x-ndjson ;q=1", "application/x-ndjson"), (None, ""), ("", "")],
)
def test_media_type_drops_parameters_and_case(header: str | None, expected: str) -> None:
    assert media_type(header) == expected


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [(None, lambda d: d), ("identity", lambda d: d), ("gzip", gzip.compress), ("GZIP", gzip.compress),
     ("x-gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", raw_deflate)],
)
def test_supported_encodings_round_trip(encoding: str | None, encode: object) -> None:
    assert callable(encode)
    assert decode_body(encode(PAYLOAD), encoding, 10 * MiB) == PAYLOAD


def test_concatenated_gzip_members_are_one_body() -> None:
    assert decode_body(gzip.compress(b"a\n") + gzip.compress(b"b\n") + b"\0\0", "gzip", MiB) == b"a\nb\n"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_body_already_inflated_by_api_gateway_is_taken_as_is(encoding: str) -> None:
    assert decode_body(PAYLOAD, encoding, 10 * MiB) == PAYLOAD


@pytest.mark.parametrize("body", [gzip.compress(PAYLOAD)[:-30], gzip.compress(PAYLOAD)[:40] + b"garbage" * 10])
def test_corrupt_or_truncated_gzip_is_400(body: bytes) -> None:
    with pytest.raises(CorruptBody) as raised:
        decode_body(body, "gzip", 10 * MiB)
    assert raised.value.status == 400


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress"])
def test_other_encodings_are_415(encoding: str) -> None:
    with pytest.raises(UnsupportedEncoding) as raised:
        decode_body(PAYLOAD, encoding, 10 * MiB)
    assert raised.value.status == 415


@pytest.mark.parametrize("encoding", [None, "gzip", "deflate"])
def test_over_the_limit_after_decompression_is_413(encoding: str | None) -> None:
    body = {None: PAYLOAD, "gzip": gzip.compress(PAYLOAD), "deflate": zlib.compress(PAYLOAD)}[encoding]
    assert decode_body(body, encoding, len(PAYLOAD)) == PAYLOAD  # exactly at the limit is fine
    with pytest.raises(BodyTooLarge) as raised:
        decode_body(body, encoding, len(PAYLOAD) - 1)
    assert raised.value.status == 413


def test_gzip_bomb_stops_at_the_limit_quickly_and_in_bounded_memory() -> None:
    body = bomb(256)  # ~256 KB that inflates to 256 MiB
    limit = 4 * MiB
    start = time.perf_counter()
    zlib.decompress(body, 31)
    full_inflate_s = time.perf_counter() - start

    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(BodyTooLarge):
        decode_body(body, "gzip", limit)
    bounded_s = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert bounded_s < full_inflate_s / 5
    assert peak < 3 * limit


def test_multi_member_bomb_is_bounded_too() -> None:
    member = gzip.compress(bytes(MiB))
    with pytest.raises(BodyTooLarge):
        decode_body(member * 64, "gzip", 8 * MiB)


@pytest.mark.slow
def test_one_megabyte_that_inflates_to_one_gigabyte_is_413_within_a_fraction_of_a_full_inflate() -> None:
    body = bomb(1024)
    assert len(body) < 1.1 * MiB
    start = time.perf_counter()
    inflater = zlib.decompressobj(31)
    inflated = 0
    for offset in range(0, len(body), 64 * 1024):  # full inflate, output discarded as it comes
        inflated += len(inflater.decompress(body[offset:offset + 64 * 1024]))
    full_inflate_s = time.perf_counter() - start
    assert inflated == 1024 * MiB

    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(BodyTooLarge):
        decode_body(body, "gzip", 32 * MiB)
    bounded_s = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert bounded_s < full_inflate_s / 10
    assert peak < 3 * 32 * MiB
