"""What reading a request by its model costs the gateway, beside the hand decoding it replaced.

    .venv/bin/python bench/gateway_protocols.py [--records 500] [--runs 30]

One SigV4-signed Firehose `PutRecordBatch` of `--records` records of 1 KB (the ingester's largest
call), identified `--runs` times; medians side by side:

- baseline: what the stand-in did before the gateway read models: `orjson.loads` of the body and
  `base64.b64decode` of every record;
- identify: `WireModels.identify` (moto's router, protocol detection and json parser on botocore's
  Firehose model: the records come out as bytes);
- service lookup: moto's dispatcher resolving the signing name to its backend, uncached (moto's
  ~200 URL patterns) and as the gateway calls it (cached per host).
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import time
from collections.abc import Callable

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.test import EnvironBuilder

from signals.local.gateway import GatewayApp, WireModels, _Interceptors


def median_ms(runs: int, call: Callable[[], object]) -> float:
    call()  # warm: models loaded, caches filled
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    records = [{"Data": base64.b64encode(bytes([i % 256]) * 1000).decode()} for i in range(args.records)]
    body = json.dumps({"DeliveryStreamName": "bench", "Records": records}).encode()
    signed = AWSRequest(method="POST", url="http://127.0.0.1:4566/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Firehose_20150804.PutRecordBatch"})
    SigV4Auth(Credentials("bench", "bench"), "firehose", "us-west-2").add_auth(signed)
    environ = EnvironBuilder(path="/", method="POST", headers=list(signed.headers.items()), data=body).get_environ()
    models = WireModels()
    dispatcher = DomainDispatcherApplication(create_backend_app)
    app = GatewayApp(dispatcher, _Interceptors(), models)
    request = models.identify("firehose", "firehose", environ, body)
    assert request.operation == "PutRecordBatch"
    assert len(request.params["Records"]) == args.records

    baseline = median_ms(args.runs, lambda: [base64.b64decode(r["Data"]) for r in orjson.loads(body)["Records"]])
    identify = median_ms(args.runs, lambda: models.identify("firehose", "firehose", environ, body))
    host = dispatcher.infer_service_region_host(environ, "/")
    uncached = median_ms(args.runs, lambda: dispatcher.get_backend_for_host(host))
    cached = median_ms(args.runs, lambda: app._botocore_name(environ))

    print(f"PutRecordBatch, {args.records} records of 1 KB ({len(body):,} bytes), median of {args.runs} runs")
    print(f"  baseline orjson + b64decode     {baseline:8.2f} ms")
    print(f"  identify (moto router + parser) {identify:8.2f} ms   {identify / baseline:5.2f}x baseline")
    print(f"  service lookup, moto uncached   {uncached:8.3f} ms")
    print(f"  service lookup, gateway cached  {cached:8.3f} ms   {uncached / cached:7.1f}x faster than uncached")


if __name__ == "__main__":
    main()
