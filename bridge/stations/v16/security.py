"""The security white paper's messages (OCPP 1.6 security extension, edition 3) ⇄ their 2.0.1 namesakes.

Rules
- Up: SecurityEventNotification (A04) keeps type and techInfo, its timestamp normalized (an unusable one
  is replaced by the receive time and reported). SignCertificate (A02) gets certificateType
  ChargingStationCertificate: the white paper's CSR is always the charge point's own certificate.
- Down: CertificateSigned, InstallCertificate, DeleteCertificate and GetInstalledCertificateIds keep their
  shape. 2.0.1 certificate types with no 1.6 counterpart (V2GCertificate, V2GRootCertificate,
  MORootCertificate, V2GCertificateChain: ISO 15118 material) are answered without asking the charger:
  CertificateSigned and InstallCertificate Rejected (UnsupportedParam); GetInstalledCertificateIds
  NotFound for those types. CSMSRootCertificate ⇄ CentralSystemRootCertificate.
- GetInstalledCertificateIds asks for several types at once in 2.0.1 (all when the list is absent) but
  one in 1.6: one call per 1.6 type (`ForwardAll`), answers merged; NotFound only when no call found any.
  2.0.1 certificateHashDataChain entries are the 1.6 hash data with their certificateType.
- Note on topology: a 1.6 charger's "Central System" is the bridge. A certificate the CSMS installs or
  signs for the charger secures the charger ↔ bridge link, not the bridge ↔ CSMS link.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.stations.v16.enums import (
    CERTIFICATE_SIGNED_STATUS_UP,
    CERTIFICATE_USE_DOWN,
    CERTIFICATE_USE_UP,
    DELETE_CERTIFICATE_STATUS_UP,
    GENERIC_STATUS_DOWN,
    INSTALL_CERTIFICATE_STATUS_UP,
)
from bridge.stations.v16.outcome import Forward, ForwardAll, Payload, Problem, Reply, refuse
from bridge.timestamps import UTC_POLICY, TimestampPolicy, timestamp_or

_HASH_FIELDS = ("hashAlgorithm", "issuerNameHash", "issuerKeyHash", "serialNumber")

# --- up --------------------------------------------------------------------------------------------------


def security_event_notification(
    request: Payload, *, received_at: str, policy: TimestampPolicy = UTC_POLICY
) -> tuple[Payload, Problem | None]:
    """A04: SecurityEventNotification, with its timestamp normalized."""
    stamp = timestamp_or(request.get("timestamp"), received_at, policy)
    payload: Payload = {"type": request["type"], "timestamp": stamp.value}
    if "techInfo" in request:
        payload["techInfo"] = request["techInfo"]
    return payload, stamp.problem


def sign_certificate(request: Payload) -> Payload:
    """A02: the charger's CSR, for its own (ChargingStation) certificate."""
    return {"csr": request["csr"], "certificateType": "ChargingStationCertificate"}


def sign_certificate_response(response: Payload) -> Payload:
    return {"status": GENERIC_STATUS_DOWN.get(response.get("status", ""), "Rejected")}


# --- down ------------------------------------------------------------------------------------------------


def certificate_signed(request: Payload) -> Forward | Reply:
    """A02/A03: CertificateSigned; a V2G certificate has no 1.6 counterpart."""
    if request.get("certificateType", "ChargingStationCertificate") != "ChargingStationCertificate":
        return refuse(
            "Rejected", "UnsupportedParam", "OCPP 1.6 chargers take no V2G certificate this way"
        )
    return Forward("CertificateSigned", {"certificateChain": request["certificateChain"]})


def certificate_signed_response(response: Payload) -> Payload:
    return {"status": CERTIFICATE_SIGNED_STATUS_UP.get(response.get("status", ""), "Rejected")}


def install_certificate(request: Payload) -> Forward | Reply:
    """M05: InstallCertificate for the two types 1.6 knows."""
    use = CERTIFICATE_USE_DOWN.get(request["certificateType"])
    if use is None:
        return refuse(
            "Rejected",
            "UnsupportedParam",
            f"{request['certificateType']} has no OCPP 1.6 counterpart",
        )
    return Forward(
        "InstallCertificate", {"certificateType": use, "certificate": request["certificate"]}
    )


def install_certificate_response(response: Payload) -> Payload:
    return {"status": INSTALL_CERTIFICATE_STATUS_UP.get(response.get("status", ""), "Failed")}


def delete_certificate(request: Payload) -> Forward:
    """M04: DeleteCertificate, identical."""
    data = request["certificateHashData"]
    return Forward(
        "DeleteCertificate", {"certificateHashData": {name: data[name] for name in _HASH_FIELDS}}
    )


def delete_certificate_response(response: Payload) -> Payload:
    return {"status": DELETE_CERTIFICATE_STATUS_UP.get(response.get("status", ""), "Failed")}


def get_installed_certificate_ids(request: Payload) -> ForwardAll | Reply:
    """M03: one 1.6 call per certificate type 1.6 knows; the rest cannot be listed."""
    wanted = request.get("certificateType") or list(CERTIFICATE_USE_DOWN)
    uses = [CERTIFICATE_USE_DOWN[t] for t in dict.fromkeys(wanted) if t in CERTIFICATE_USE_DOWN]
    if not uses:
        return refuse(
            "NotFound",
            "UnsupportedParam",
            "an OCPP 1.6 charger lists only CSMS and manufacturer root certificates",
        )
    return ForwardAll(
        tuple(Forward("GetInstalledCertificateIds", {"certificateType": use}) for use in uses)
    )


def get_installed_certificate_ids_response(
    calls: Sequence[Forward], responses: Sequence[Payload | None]
) -> Payload:
    """Merge the answers (None for a call that failed) of `get_installed_certificate_ids`' calls."""
    chain = []
    for call, response in zip(calls, responses, strict=True):
        if not response or response.get("status") != "Accepted":
            continue
        certificate_type = CERTIFICATE_USE_UP[call.payload["certificateType"]]
        for data in response.get("certificateHashData", []):
            chain.append(
                {
                    "certificateType": certificate_type,
                    "certificateHashData": {name: data[name] for name in _HASH_FIELDS},
                }
            )
    if not chain:
        return {"status": "NotFound"}
    return {"status": "Accepted", "certificateHashDataChain": chain}
