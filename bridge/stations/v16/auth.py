"""Authorization: Authorize (charger → CSMS), idTokenInfo → idTagInfo, and the local list and cache
commands (SendLocalList, GetLocalListVersion, ClearCache).

Rules
- idTag ⇄ idToken follows `bridge.stations.v16.id_token`: up, the type is restored or inferred; down, a token
  longer than 20 characters travels as the injected alias, or the request is refused truthfully.
- idTokenInfo → idTagInfo: status through `AUTHORIZATION_STATUS_DOWN` (the 2.0.1-only statuses become
  Invalid); cacheExpiryDateTime → expiryDate; groupIdToken → parentIdTag (aliased like any token; omitted
  when it has no idTag). chargingPriority, language, evseId and personalMessage have no 1.6 slot.
- SendLocalList (D01): versionNumber → listVersion; each entry's idToken → idTag. An entry whose token has
  no idTag makes the whole list Failed (InvalidIdToken): sending part of a list would leave the charger
  with a list that is not the CSMS's version. An idTokenInfo.evseId restriction cannot be expressed in 1.6:
  such a token would become valid on every EVSE, so the list is refused (UnsupportedParam) rather than
  widened. Response NotSupported → Failed with reasonCode UnsupportedRequest.
- GetLocalListVersion (D02): 1.6 answers -1 when it has no local list support; 2.0.1 has no such value,
  and "no list installed" (0) is the truth a CSMS can act on.
"""

from __future__ import annotations

from bridge.stations.v16.enums import (
    AUTHORIZATION_STATUS_DOWN,
    CLEAR_CACHE_STATUS_UP,
    SEND_LOCAL_LIST_STATUS_UP,
    UPDATE_TYPE_DOWN,
)
from bridge.stations.v16.id_token import (
    DEFAULT_RULE,
    AliasFor,
    IdTokenTypeRule,
    KnownToken,
    id_tag_for,
    id_token_for,
)
from bridge.stations.v16.outcome import Forward, Payload, Reply, refuse, status_info
from bridge.timestamps import utc_for_charger


def id_tag_info(id_token_info: Payload, alias: AliasFor | None = None) -> Payload:
    """2.0.1 IdTokenInfoType → 1.6 IdTagInfo."""
    info: Payload = {"status": AUTHORIZATION_STATUS_DOWN.get(id_token_info["status"], "Invalid")}
    if "cacheExpiryDateTime" in id_token_info:
        info["expiryDate"] = utc_for_charger(id_token_info["cacheExpiryDateTime"])
    group = id_token_info.get("groupIdToken")
    if isinstance(group, dict):
        parent = id_tag_for(group, alias)
        if parent is not None:
            info["parentIdTag"] = parent
    return info


# --- Authorize ----------------------------------------------------------------------------------------


def authorize_request(
    request: Payload, *, rule: IdTokenTypeRule = DEFAULT_RULE, known: KnownToken | None = None
) -> Payload:
    """C01: 1.6 Authorize.req → 2.0.1 AuthorizeRequest."""
    return {"idToken": id_token_for(request["idTag"], rule, known)}


def authorize_response(response: Payload, *, alias: AliasFor | None = None) -> Payload:
    """C01: 2.0.1 AuthorizeResponse → 1.6 Authorize.conf."""
    return {"idTagInfo": id_tag_info(response["idTokenInfo"], alias)}


# --- local list and cache ------------------------------------------------------------------------------


def send_local_list(request: Payload, *, alias: AliasFor | None = None) -> Forward | Reply:
    """D01: SendLocalList with every idToken turned into an idTag."""
    entries = []
    for index, entry in enumerate(request.get("localAuthorizationList", [])):
        tag = id_tag_for(entry["idToken"], alias)
        if tag is None:
            return refuse(
                "Failed",
                "InvalidIdToken",
                f"localAuthorizationList[{index}]: idToken has no OCPP 1.6 idTag",
            )
        item: Payload = {"idTag": tag}
        info = entry.get("idTokenInfo")
        if isinstance(info, dict):
            if "evseId" in info:
                return refuse(
                    "Failed",
                    "UnsupportedParam",
                    f"localAuthorizationList[{index}]: an evseId restriction cannot be expressed "
                    "in OCPP 1.6",
                )
            item["idTagInfo"] = id_tag_info(info, alias)
        entries.append(item)
    payload: Payload = {
        "listVersion": request["versionNumber"],
        "updateType": UPDATE_TYPE_DOWN[request["updateType"]],
    }
    if entries:
        payload["localAuthorizationList"] = entries
    return Forward("SendLocalList", payload)


def send_local_list_response(response: Payload) -> Payload:
    status = response.get("status", "Failed")
    result: Payload = {"status": SEND_LOCAL_LIST_STATUS_UP.get(status, "Failed")}
    if status == "NotSupported":
        result["statusInfo"] = status_info(
            "UnsupportedRequest", "the charger does not support a local authorization list"
        )
    return result


def get_local_list_version(request: Payload) -> Forward:
    """D02: GetLocalListVersion, identical."""
    return Forward("GetLocalListVersion", {})


def get_local_list_version_response(response: Payload) -> Payload:
    version = response.get("listVersion", 0)
    return {"versionNumber": version if isinstance(version, int) and version > 0 else 0}


def clear_cache(request: Payload) -> Forward:
    """C11: ClearCache, identical."""
    return Forward("ClearCache", {})


def clear_cache_response(response: Payload) -> Payload:
    return {"status": CLEAR_CACHE_STATUS_UP.get(response.get("status", ""), "Rejected")}
