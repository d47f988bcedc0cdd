"""Schema validation cost per message: the bridge's compiled path against the `ocpp` package's path.

Run: `.venv/bin/python -m bench.validation` (prints a table and, last, one JSON line).
Both paths validate the same payloads in the same process, so the ratio is meaningful on a noisy machine;
the absolute figures are CPU time per call (time.process_time over many calls).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import orjson
from ocpp.messages import Call, _validate_payload

from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import OcppVersion
from bridge.ocppj.rpc import RpcEndpoint
from bridge.ocppj.schema import PayloadKind

TRANSACTION_EVENT: dict[str, Any] = {
    "eventType": "Updated",
    "timestamp": "2026-11-22T10:00:00.000Z",
    "triggerReason": "MeterValuePeriodic",
    "seqNo": 7,
    "transactionInfo": {"transactionId": "b7f3c2a1-0001", "chargingState": "Charging"},
    "evse": {"id": 1, "connectorId": 1},
    "meterValue": [
        {
            "timestamp": "2026-11-22T10:00:00.000Z",
            "sampledValue": [
                {
                    "value": 12345.6,
                    "measurand": "Energy.Active.Import.Register",
                    "unitOfMeasure": {"unit": "Wh"},
                },
                {
                    "value": 16.0,
                    "measurand": "Current.Import",
                    "phase": "L1",
                    "unitOfMeasure": {"unit": "A"},
                },
                {
                    "value": 230.1,
                    "measurand": "Voltage",
                    "phase": "L1-N",
                    "unitOfMeasure": {"unit": "V"},
                },
            ],
        }
    ],
}
START_TRANSACTION_16 = {
    "connectorId": 1,
    "idTag": "04A2B3C4D5E6F7",
    "meterStart": 1200,
    "timestamp": "2026-11-22T10:00:00Z",
}


def per_call_us(function: Callable[[], object], seconds: float = 1.0) -> float:
    """CPU microseconds per call, over at least `seconds` of CPU time."""
    calls = 0
    batch = 100
    start = time.process_time()
    while True:
        for _ in range(batch):
            function()
        calls += batch
        elapsed = time.process_time() - start
        if elapsed >= seconds:
            return elapsed / calls * 1e6
        batch *= 2


def main() -> None:
    schemas = OfficialSchemas()
    raw = orjson.dumps([2, "m1", "TransactionEvent", TRANSACTION_EVENT]).decode()
    endpoint_counter = iter(range(10**9))
    endpoint = RpcEndpoint(
        OcppVersion.V201, schemas, lambda: str(next(endpoint_counter)), call_timeout=30
    )

    def receive_and_answer() -> None:
        endpoint.receive(raw, 0.0)
        endpoint.reply("m1", {}, validated=True)
        endpoint.take_outgoing()

    results = {
        "bridge_validate_transaction_event_us": per_call_us(
            lambda: schemas.check(
                OcppVersion.V201, "TransactionEvent", PayloadKind.REQUEST, TRANSACTION_EVENT
            )
        ),
        "bridge_validate_start_transaction_16_us": per_call_us(
            lambda: schemas.check(
                OcppVersion.V16, "StartTransaction", PayloadKind.REQUEST, START_TRANSACTION_16
            )
        ),
        "bridge_parse_validate_answer_us": per_call_us(receive_and_answer),
        "ocpp_package_validate_transaction_event_us": per_call_us(
            lambda: _validate_payload(Call("m1", "TransactionEvent", TRANSACTION_EVENT), "2.0.1"),
            2.0,
        ),
    }
    results["speedup_vs_ocpp_package"] = (
        results["ocpp_package_validate_transaction_event_us"]
        / results["bridge_validate_transaction_event_us"]
    )
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value:10.2f}")
    print(json.dumps({k: round(v, 2) for k, v in results.items()}))


if __name__ == "__main__":
    main()
