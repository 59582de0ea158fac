"""`signals local` refuses to start, in one line, when a served service speaks what the gateway cannot serve.

A new botocore can ship a model in a protocol moto's parsers do not read, or bind operations to paths moto's
URL map does not route (Athena's rest-json on moto 5.2.6 before the gateway's adaptation). Starting anyway
would answer 404 or an empty success to every client; the stack stops at start instead, naming the service,
the protocol and the versions.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import botocore
import moto
import pytest
from moto.core.utils import get_service_model
from moto.moto_server.werkzeug_app import create_backend_app

from signals.cli import main
from signals.local import gateway as gateway_module
from signals.local.gateway import (
    SERVED_SERVICES,
    UnsupportedProtocol,
    WireModels,
    check_protocols,
    moto_routes_paths,
    route_every_path,
)

REAL_DESCRIPTION = gateway_module._moto_description


def described(name: str, **metadata: Any) -> dict[str, Any]:
    """The real model of `name` (botocore's, with moto's extras), its metadata changed."""
    description = copy.deepcopy(REAL_DESCRIPTION(name))
    description["metadata"].update(metadata)
    return description


def test_the_models_of_every_served_service_are_served() -> None:
    check_protocols(SERVED_SERVICES, WireModels())  # raises otherwise


def test_a_protocol_the_parsers_do_not_read_is_refused_in_one_line() -> None:
    models = WireModels(lambda name: described(name, protocol="smithy-rpc-v3-ion", protocols=["smithy-rpc-v3-ion"]))
    with pytest.raises(UnsupportedProtocol) as raised:
        check_protocols(["glue"], models)
    message = str(raised.value)
    assert "\n" not in message
    assert "glue" in message
    assert "smithy-rpc-v3-ion" in message
    assert f"botocore {botocore.__version__}" in message
    assert f"moto {moto.__version__}" in message


def test_rest_paths_moto_does_not_route_are_refused_unless_adapted() -> None:
    """Firehose as if its model moved to rest-json: moto routes Firehose only at `/`, nothing adapts it."""

    def rest_firehose(name: str) -> dict[str, Any]:
        description = described(name, protocol="rest-json", protocols=["rest-json"])
        for operation_name, operation in description["operations"].items():
            operation["http"] = {"method": "POST", "requestUri": f"/delivery-streams/{operation_name}"}
        return description

    with pytest.raises(UnsupportedProtocol) as raised:
        check_protocols(["firehose"], WireModels(rest_firehose))
    message = str(raised.value)
    assert "\n" not in message
    assert "firehose" in message
    assert "rest-json" in message
    assert f"moto {moto.__version__}" in message
    # Athena's rest-json paths are not in moto 5.2.6's URL map either, but the gateway routes them.
    check_protocols(["athena"], WireModels())


def test_signals_local_stops_at_start_with_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(gateway_module, "_moto_description", lambda name: (
        described(name, protocol="smithy-rpc-v3-ion", protocols=["smithy-rpc-v3-ion"]) if name == "athena"
        else REAL_DESCRIPTION(name)))
    monkeypatch.setenv("SIGNALS_HOME", str(tmp_path))

    status = main(["local", "--port", "0", "--aws-port", "0"])

    assert status == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("signals local: cannot serve athena: ")
    assert "smithy-rpc-v3-ion" in lines[0]
    assert f"botocore {botocore.__version__}, moto {moto.__version__}" in lines[0]
    assert not (tmp_path / "local-stack.json").exists()  # it never started


def test_the_athena_adaptations_switch_themselves_off_once_moto_has_the_fix() -> None:
    """Both guards read moto itself: its URL map (ROUTE_REST_PATHS) and its model (LEGACY_JSON)."""
    model = get_service_model("athena")
    app = create_backend_app("athena")
    assert moto_routes_paths(app, model) is (model.protocol not in ("rest-json", "rest-xml"))  # 5.2.6: only `/`
    route_every_path(app)  # what moto/athena/urls.py would route once fixed
    assert moto_routes_paths(app, model)

    # A model that declares json again (moto's extras, once fixed) is read as it is.
    fixed = WireModels(lambda name: described(name, protocols=["rest-json", "json"], targetPrefix="AmazonAthena2",
                                              jsonVersion="1.0"))
    assert fixed.model("athena").metadata["targetPrefix"] == "AmazonAthena2"
    assert WireModels().model("athena").metadata["targetPrefix"] == "AmazonAthena"  # today: the adaptation's
