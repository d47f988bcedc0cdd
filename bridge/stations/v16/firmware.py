"""Firmware and logs: UpdateFirmware and GetLog down; the firmware, diagnostics and log status
notifications up, with the remembered requestId.

Rules
- UpdateFirmware (L01/L02): signed (signingCertificate and signature present) → the security white paper's
  SignedUpdateFirmware, field for field; only one of the two → Rejected (MissingParam). Unsigned → 1.6
  UpdateFirmware {location, retrieveDate, retries, retryInterval}, whose answer is empty: Accepted.
  1.6 installs as soon as the download is done, so an installDateTime later than retrieveDateTime cannot
  be honoured and is refused (UnsupportedParam) rather than installing early (design choice); an earlier
  or equal one changes nothing and is dropped. 1.6 needs a URI for location: anything else → Rejected
  (InvalidURL). The core keeps requestId for the charger's later status notifications.
- GetLog (N01): SecurityLog → the security white paper's GetLog (same shape). DiagnosticsLog →
  GetDiagnostics {location = remoteLocation, startTime = oldestTimestamp, stopTime = latestTimestamp,
  retries, retryInterval}; its answer's fileName → filename with Accepted. 1.6 omits fileName when no
  diagnostic information is available: then nothing will be uploaded, answered Rejected (NotFound).
- Status notifications up: FirmwareStatusNotification keeps its status (every 1.6 status exists in 2.0.1)
  and gets the requestId the core remembered from UpdateFirmware (omitted when none is ongoing, which
  2.0.1 allows only then); SignedFirmwareStatusNotification → FirmwareStatusNotification;
  DiagnosticsStatusNotification → LogStatusNotification (UploadFailed → UploadFailure) with the GetLog
  requestId; the security LogStatusNotification passes as it is.
- Times going down are re-written as UTC `Z`.
"""

from __future__ import annotations

import re
from typing import Final

from bridge.stations.v16.enums import (
    DIAGNOSTICS_STATUS_UP,
    FIRMWARE_STATUS_UP,
    GET_LOG_STATUS_UP,
    LOG_STATUS_UP,
    SIGNED_FIRMWARE_STATUS_UP,
    SIGNED_UPDATE_FIRMWARE_STATUS_UP,
)
from bridge.stations.v16.outcome import Forward, Payload, Reply, refuse
from bridge.timestamps import parse_timestamp, utc_for_charger

# An absolute URI (RFC 3986 §4.3) without characters a URI never contains raw; what 1.6 `format: uri`
# needs for UpdateFirmware.location and GetDiagnostics.location.
_URI: Final = re.compile(
    r"^[A-Za-z][A-Za-z0-9+.\-]*:(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?\[\]]|%[0-9A-Fa-f]{2})*$"
)


def is_uri(text: str) -> bool:
    return bool(_URI.match(text))


def _retries(request: Payload) -> Payload:
    return {name: request[name] for name in ("retries", "retryInterval") if name in request}


# --- UpdateFirmware -------------------------------------------------------------------------------


def update_firmware(request: Payload) -> Forward | Reply:
    """L01/L02: UpdateFirmware → UpdateFirmware or SignedUpdateFirmware."""
    firmware = request["firmware"]
    has_certificate, has_signature = "signingCertificate" in firmware, "signature" in firmware
    if has_certificate != has_signature:
        return refuse(
            "Rejected",
            "MissingParam",
            "a signed firmware needs both signingCertificate and signature",
        )
    if has_signature:
        signed: Payload = {
            "location": firmware["location"],
            "retrieveDateTime": utc_for_charger(firmware["retrieveDateTime"]),
            "signingCertificate": firmware["signingCertificate"],
            "signature": firmware["signature"],
        }
        if "installDateTime" in firmware:
            signed["installDateTime"] = utc_for_charger(firmware["installDateTime"])
        return Forward(
            "SignedUpdateFirmware",
            {"requestId": request["requestId"], "firmware": signed, **_retries(request)},
        )
    if not is_uri(firmware["location"]):
        return refuse("Rejected", "InvalidURL", "OCPP 1.6 needs an absolute URI as location")
    if "installDateTime" in firmware:
        install = parse_timestamp(firmware["installDateTime"])
        retrieve = parse_timestamp(firmware["retrieveDateTime"])
        if install is not None and retrieve is not None and install > retrieve:
            return refuse(
                "Rejected",
                "UnsupportedParam",
                "an OCPP 1.6 charger installs right after the download: installDateTime cannot "
                "be later than retrieveDateTime",
            )
    return Forward(
        "UpdateFirmware",
        {
            "location": firmware["location"],
            "retrieveDate": utc_for_charger(firmware["retrieveDateTime"]),
            **_retries(request),
        },
    )


def update_firmware_response(action: str, response: Payload) -> Payload:
    """The answer to the 1.6 call `action` ("UpdateFirmware" or "SignedUpdateFirmware")."""
    if action == "UpdateFirmware":
        return {"status": "Accepted"}
    return {"status": SIGNED_UPDATE_FIRMWARE_STATUS_UP.get(response.get("status", ""), "Rejected")}


# --- GetLog ---------------------------------------------------------------------------------------------


def get_log(request: Payload) -> Forward | Reply:
    """N01: GetLog → GetDiagnostics (DiagnosticsLog) or the security GetLog (SecurityLog)."""
    log = request["log"]
    if request["logType"] == "SecurityLog":
        parameters: Payload = {"remoteLocation": log["remoteLocation"]}
        for name in ("oldestTimestamp", "latestTimestamp"):
            if name in log:
                parameters[name] = utc_for_charger(log[name])
        return Forward(
            "GetLog",
            {
                "logType": "SecurityLog",
                "requestId": request["requestId"],
                "log": parameters,
                **_retries(request),
            },
        )
    if not is_uri(log["remoteLocation"]):
        return refuse("Rejected", "InvalidURL", "OCPP 1.6 needs an absolute URI as location")
    payload: Payload = {"location": log["remoteLocation"], **_retries(request)}
    if "oldestTimestamp" in log:
        payload["startTime"] = utc_for_charger(log["oldestTimestamp"])
    if "latestTimestamp" in log:
        payload["stopTime"] = utc_for_charger(log["latestTimestamp"])
    return Forward("GetDiagnostics", payload)


def get_log_response(action: str, response: Payload) -> Payload:
    """The answer to the 1.6 call `action` ("GetDiagnostics" or "GetLog")."""
    if action == "GetDiagnostics":
        if not response.get("fileName"):
            return refuse(
                "Rejected", "NotFound", "the charger has no diagnostic information to upload"
            ).response
        return {"status": "Accepted", "filename": response["fileName"]}
    result: Payload = {"status": GET_LOG_STATUS_UP.get(response.get("status", ""), "Rejected")}
    if "filename" in response:
        result["filename"] = response["filename"]
    return result


# --- status notifications up ----------------------------------------------------------------------------


def _with_request_id(status: str, request_id: int | None) -> Payload:
    payload: Payload = {"status": status}
    if request_id is not None:
        payload["requestId"] = request_id
    return payload


def firmware_status_notification(request: Payload, *, request_id: int | None) -> Payload:
    """L01: 1.6 FirmwareStatusNotification → 2.0.1, with the UpdateFirmware requestId."""
    return _with_request_id(FIRMWARE_STATUS_UP[request["status"]], request_id)


def signed_firmware_status_notification(request: Payload) -> Payload:
    """L01: the security SignedFirmwareStatusNotification → 2.0.1 FirmwareStatusNotification."""
    return _with_request_id(SIGNED_FIRMWARE_STATUS_UP[request["status"]], request.get("requestId"))


def diagnostics_status_notification(request: Payload, *, request_id: int | None) -> Payload:
    """N01: 1.6 DiagnosticsStatusNotification → 2.0.1 LogStatusNotification."""
    return _with_request_id(DIAGNOSTICS_STATUS_UP[request["status"]], request_id)


def log_status_notification(request: Payload) -> Payload:
    """N01: the security LogStatusNotification → 2.0.1 LogStatusNotification."""
    return _with_request_id(LOG_STATUS_UP[request["status"]], request.get("requestId"))
