"""OCPP-J frames: CALL, CALLRESULT and CALLERROR (OCPP-J 1.6 §4, OCPP 2.0.1 part 4 §4).

Rules
- `parse_frame` is total: any text or bytes in → a `Call`, `CallResult`, `CallError` or `FrameError`.
  It never raises, whatever the input.
- A `FrameError` carries the CALLERROR to answer with when the broken frame was, or may have been, a CALL;
  a broken CALLRESULT or CALLERROR gets no answer (2.0.1 has no error-for-a-response), only a diagnostic.
- When the message id cannot be read the answer uses "-1" and RPC_FRAMEWORK (part 4 §4.2.3: "Messageld
  could not be read"). A frame that is not JSON at all still has its id salvaged when its opening
  `[2, "<id>"` is intact, so the sender can match the error: a readable id with a malformed payload is
  FORMAT.
- Message ids are strings of 1 to 36 characters. Payloads are JSON objects; `null` is read as `{}` (part 4
  §4.1.5 allows both notations for "no payload" and recommends `{}`, which is what we send); a CALL says
  so (`null_payload`), so an action that needs a payload answers it FORMAT, as it does a string.
- A CALLERROR may omit errorDetails (read as `{}`); its description is cut to 255 characters on output.
- JSON is read strictly (orjson): NaN, Infinity and invalid UTF-8 are rejected, which the specifications
  require and the standard library's parser would let through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

from bridge.ocppj.errors import Fault, OcppVersion, error_code

CALL: Final = 2
CALLRESULT: Final = 3
CALLERROR: Final = 4

MAX_MESSAGE_ID_LENGTH: Final = 36
MAX_DESCRIPTION_LENGTH: Final = 255
UNREADABLE_ID: Final = "-1"

# Enough of a broken frame to answer it: `[2, "<id>"` at its start.
_SALVAGE_ID = re.compile(r'^\s*\[\s*2\s*,\s*"([^"\\]{1,36})"')

Payload = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Call:
    message_id: str
    action: str
    payload: Payload
    null_payload: bool = False  # the frame said null (read as {}): FORMAT if the action needs more

    def serialize(self) -> str:
        return orjson.dumps([CALL, self.message_id, self.action, self.payload]).decode()


@dataclass(frozen=True, slots=True)
class CallResult:
    message_id: str
    payload: Payload

    def serialize(self) -> str:
        return orjson.dumps([CALLRESULT, self.message_id, self.payload]).decode()


@dataclass(frozen=True, slots=True)
class CallError:
    message_id: str
    code: str
    description: str
    details: Payload

    def serialize(self) -> str:
        description = self.description[:MAX_DESCRIPTION_LENGTH]
        return orjson.dumps(
            [CALLERROR, self.message_id, self.code, description, self.details]
        ).decode()


Frame = Call | CallResult | CallError


@dataclass(frozen=True, slots=True)
class FrameError:
    """A frame that is not valid OCPP-J. `reply` is the CALLERROR to send back, if one is due."""

    reason: str
    reply: CallError | None


def make_error(
    version: OcppVersion,
    message_id: str,
    fault: Fault,
    description: str,
    details: Payload | None = None,
) -> CallError:
    """A CALLERROR spelled for `version`."""
    return CallError(
        message_id,
        error_code(version, fault),
        description[:MAX_DESCRIPTION_LENGTH],
        details if details is not None else {},
    )


def is_message_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_MESSAGE_ID_LENGTH


def parse_frame(data: str | bytes, version: OcppVersion) -> Frame | FrameError:
    """Read one WebSocket message. Never raises."""
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return _broken_json(data, version, str(exc))
    if not isinstance(message, list) or not message:
        return _error(version, UNREADABLE_ID, Fault.RPC_FRAMEWORK, "frame is not a non-empty array")
    type_id = message[0]
    if not isinstance(type_id, int) or isinstance(type_id, bool):
        readable = message[1] if len(message) > 1 and is_message_id(message[1]) else UNREADABLE_ID
        return _error(version, readable, Fault.RPC_FRAMEWORK, "message type id is not an integer")
    if type_id == CALL:
        return _parse_call(message, version)
    if type_id == CALLRESULT:
        return _parse_result(message)
    if type_id == CALLERROR:
        return _parse_error(message)
    readable = message[1] if len(message) > 1 and is_message_id(message[1]) else UNREADABLE_ID
    return _error(version, readable, Fault.MESSAGE_TYPE, f"message type {type_id} is not supported")


def _parse_call(message: list[Any], version: OcppVersion) -> Call | FrameError:
    if len(message) < 2 or not is_message_id(message[1]):
        return _error(
            version, UNREADABLE_ID, Fault.RPC_FRAMEWORK, "CALL without a readable message id"
        )
    message_id: str = message[1]
    if len(message) != 4:
        return _error(
            version, message_id, Fault.RPC_FRAMEWORK, f"CALL has {len(message)} elements, not 4"
        )
    action = message[2]
    if not isinstance(action, str) or not action:
        return _error(version, message_id, Fault.RPC_FRAMEWORK, "CALL action is not a string")
    payload = message[3]
    if payload is None:
        return Call(message_id, action, {}, null_payload=True)
    if not isinstance(payload, dict):
        return _error(version, message_id, Fault.FORMAT, "CALL payload is not a JSON object")
    return Call(message_id, action, payload)


def _parse_result(message: list[Any]) -> CallResult | FrameError:
    if len(message) != 3 or not is_message_id(message[1]):
        return FrameError("CALLRESULT is not [3, id, payload]", None)
    payload = message[2]
    if payload is None:
        payload = {}
    elif not isinstance(payload, dict):
        return FrameError("CALLRESULT payload is not a JSON object", None)
    return CallResult(message[1], payload)


def _parse_error(message: list[Any]) -> CallError | FrameError:
    if len(message) not in (4, 5) or not is_message_id(message[1]):
        return FrameError("CALLERROR is not [4, id, code, description, details]", None)
    code, description = message[2], message[3]
    details = message[4] if len(message) == 5 else {}
    if not isinstance(code, str) or not isinstance(description, str):
        return FrameError("CALLERROR code or description is not a string", None)
    if details is None:
        details = {}
    elif not isinstance(details, dict):
        return FrameError("CALLERROR details is not a JSON object", None)
    return CallError(message[1], code, description, details)


def _broken_json(data: str | bytes, version: OcppVersion, detail: str) -> FrameError:
    text = data if isinstance(data, str) else data[:64].decode("utf-8", "replace")
    salvaged = _SALVAGE_ID.match(text)
    if salvaged is None:
        return _error(
            version, UNREADABLE_ID, Fault.RPC_FRAMEWORK, f"frame is not valid JSON: {detail}"
        )
    return _error(version, salvaged.group(1), Fault.FORMAT, f"frame is not valid JSON: {detail}")


def _error(version: OcppVersion, message_id: str, fault: Fault, reason: str) -> FrameError:
    return FrameError(reason, make_error(version, message_id, fault, reason))
