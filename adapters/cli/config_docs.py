"""The configuration reference (docs/configuration.md), rendered from the settings models that run.

Rules
- Every key of every section, with its type, default and description, comes from `adapters.config`; the
  document is never edited by hand. `python -m adapters.cli.config_docs > docs/configuration.md` rewrites it,
  and a test fails when the committed file differs from what the models render.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from adapters.config import (
    ENV_PREFIX,
    SECRET_KEYS,
    BridgeSection,
    CsmsSection,
    Iec104Station,
    OcppStation,
    SouthSection,
)

_INTRO = f"""\
# Configuration reference

Generated from `adapters/config.py` by `python -m adapters.cli.config_docs`; do not edit by hand.

The bridge reads one TOML file (`ocpp-bridge run --config FILE`). Any key can be overridden from the
environment: `{ENV_PREFIX}<SECTION>__<KEY>` (for example `{ENV_PREFIX}CSMS__URL`), and a station's key
with `{ENV_PREFIX}STATIONS__<ID>__<KEY>`, where `<ID>` is the station id in upper case with every
character outside A–Z and 0–9 written `_` (station `CP16-1` → `{ENV_PREFIX}STATIONS__CP16_1__PORT`).
An unknown key, in the file or in the environment, is an error, and so is a station key that applies to
another protocol's stations (`id_token_type` on an `ocpp2.0.1` station).

Values have the type the tables below show: `compression = true`, not `"yes"`; `port = 2404`, not
`"2404"`; seconds are numbers, never `true`. An environment override is text and is converted to its
key's type (`true`/`false` or `1`/`0`, digits for a number).

Relative paths written in the file (`store`, `trace_dir`, certificate, key and CA files, `mapping`,
`device_model`) count from the file's folder, so tables can sit beside `bridge.toml`; relative paths in
environment overrides, and the default store `bridge.db`, count from the working directory.

Secrets ({", ".join(f"`{k}`" for k in sorted(SECRET_KEYS))}, and `[csms] password`) are read from the
environment only: a secret written in the file is refused at start-up. They are never logged.

`ocpp-bridge check --config FILE` validates a file and its overrides without starting anything; every
problem is printed as `FILE:LINE: key: reason` (or `environment VARIABLE: key: reason`).
"""

_SECTIONS: list[tuple[str, type[BaseModel], str]] = [
    ("[bridge]", BridgeSection, "The process."),
    ("[csms]", CsmsSection, "The CSMS every station connects to (OCPP 2.0.1)."),
    ("[south]", SouthSection, "Where OCPP chargers connect."),
    (
        '[[stations]] with protocol = "ocpp1.6" or "ocpp2.0.1"',
        OcppStation,
        "An OCPP charger; it connects to `ws://<south.listen>/<id>`.",
    ),
    (
        '[[stations]] with protocol = "iec104"',
        Iec104Station,
        "An IEC 60870-5-104 charger; the bridge connects to it as the controlling station.",
    ),
]

_POLICIES = """\
## Policies

- **Security profiles toward the CSMS** (OCPP 2.0.1 A00): 0 = no authentication (tests only);
  1 = HTTP Basic authentication over `ws://`; 2 = TLS (≥ 1.2, server certificate checked against
  `ca_file` or the system store) + Basic authentication; 3 = mutual TLS with the bridge's client
  certificate (`cert_file`, `key_file`). The username is the station id; passwords have 16 to 40
  characters. One TLS context serves every station. The scheme must match the profile (`wss://` for 2
  and 3), so a profile is never silently downgraded.
- **A second connection for a connected station id** (`[south] duplicate_connection`): `replace`
  (default) closes the old connection with 1000 once the new one has authenticated — a charger that
  reconnects usually lost a link the bridge has not noticed yet; `reject` answers HTTP 409. Either way
  the event is logged as `south.duplicate_connection` with both peers' addresses.
- **OCPP 2.0.1 chargers** are relayed as themselves (OCPP 2.0.1 part 4 §6, Local Controller): the CSMS
  connection is opened when the charger connects and closed when it leaves; when the CSMS connection is
  lost or cannot be opened, the charger is closed with 1013 (try again later) and queues as it would with
  a direct link.
- **Reconnecting to the CSMS** follows OCPP-J's randomised doubling back-off
  (`retry_backoff_wait_minimum`, `retry_backoff_random_range`, `retry_backoff_repeat_times`), and all
  stations' attempts share one token bucket (`connect_rate` per second, `connect_burst`) so that a CSMS
  restart does not turn into a connection storm.
- **Liveness**: on both sides, a peer that has sent neither a message nor a pong for `ping_interval`
  seconds is pinged (a station that talks is not), and if neither comes within `ping_timeout` it is
  disconnected; pings go out on a grid of at most 1 s, so a half-open link is noticed within
  `ping_interval + ping_timeout` plus 2 s plus the 3 s granted to the closing handshake (45 s with the
  defaults).
"""


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(
            f'`"{a}"`' if isinstance(a, str) else f"`{a}`" for a in typing.get_args(annotation)
        )
    if origin in (typing.Union, types.UnionType):
        parts = [a for a in typing.get_args(annotation) if a is not type(None)]
        return " \\| ".join(_type_name(a) for a in parts)
    name = getattr(annotation, "__name__", str(annotation))
    return {
        "SecretStr": "secret",
        "Path": "path",
        "str": "string",
        "int": "integer",
        "float": "number",
        "bool": "boolean",
    }.get(name, name)


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    if field.default is None:
        return "—"
    if isinstance(field.default, bool):
        return f"`{str(field.default).lower()}`"
    if isinstance(field.default, str):
        return f'`"{field.default}"`'
    return f"`{field.default}`"


def render() -> str:
    lines = [_INTRO]
    for title, model, summary in _SECTIONS:
        lines += [
            f"## {title}",
            "",
            summary,
            "",
            "| key | type | default | meaning |",
            "|---|---|---|---|",
        ]
        for name, field in model.model_fields.items():
            if name == "protocol":
                continue
            meaning = field.description or ""
            if name in SECRET_KEYS or (model is CsmsSection and name == "password"):
                meaning += " — environment only"
            lines.append(
                f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {meaning} |"
            )
        lines.append("")
    lines.append(_POLICIES)
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")  # noqa: T201
