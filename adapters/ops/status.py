"""The operator's status page: what each station looks like now, as HTML (`GET /` and `/status`) and JSON
(`GET /status.json`) on the health address, when `[bridge] status_page = true`.

Rules
- Read-only and built on demand: `snapshot(runtime, query)` gathers one page of stations from the
  running bridge's own state (the cores' registration, connectors, ledgers and outboxes, the 104 links,
  the charger listener) and each station's `StationActivity`; `render_html` turns that same snapshot
  into the page, so the page and /status.json never disagree. Everything runs on the event loop's
  thread: no locks, no copies kept.
- `StationActivity` is what no core keeps: the last frame each way on each side (when, and what: the
  action, CALLRESULT, CALLERROR, or for a 104 link the event or command), whether each side's connection
  is up, and, read from the TransactionEvent, StatusNotification and BootNotification CALLs the bridge
  sends the CSMS (and the CSMS's answers to them), the open transactions with their energy so far,
  connector statuses and the registration of pass-through stations, and the last transaction ended and
  whether the CSMS acknowledged it. The driver tells it every frame (`adapters.driver`, only when the
  page is on: otherwise no station has one and nothing is recorded); a frame is labelled from its head
  (`adapters.ops.metrics.frame_label`) and only those three CALLs toward the CSMS, and the answers awaited
  for them, are parsed. Everything it holds is bounded (`MAX_TRANSACTIONS`, `MAX_CONNECTORS`,
  `MAX_AWAITED` per station).
- No secret and no idToken in clear: an idToken is kept only masked (`adapters.ops.trace.mask_token`, as in
  traces: `04****F7`); no frame's content is shown, only its label and time; no password, no URL
  with credentials.
- Scale: a page shows at most `limit` stations (50 by default, at most `MAX_LIMIT`), filtered by a part
  of their id (`q`, case-insensitive) and/or to those with a problem (`problems=1`: charger side or CSMS
  side not connected, or messages queued); the bridge's line counts every station. 10,000 stations are
  served a page in a few milliseconds (the report of issue 21 has the figure).
- The HTML page has no script: it reloads itself every `REFRESH_SECONDS` (`<meta http-equiv="refresh">`,
  same address, so the filter and the page stay), and every value is escaped.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

import orjson

from adapters.ops.metrics import CALLERROR, CALLRESULT, frame_label
from adapters.ops.trace import mask_token
from adapters.version import version
from bridge.effects import Side

if TYPE_CHECKING:
    from adapters.runtime import Runtime
    from bridge.stations.iec104.core import Station104
    from bridge.stations.v16.core import Station16

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "REFRESH_SECONDS",
    "StationActivity",
    "StatusQuery",
    "render_html",
    "snapshot",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
REFRESH_SECONDS = 5
MAX_TRANSACTIONS = 16  # open transactions remembered per station (a station has a few EVSEs)
MAX_CONNECTORS = 64
MAX_AWAITED = 8  # CALLs toward the CSMS whose answer is awaited (boot, a transaction's end)
ENERGY = "Energy.Active.Import.Register"
_WATCHED = frozenset({"TransactionEvent", "StatusNotification", "BootNotification"})
_KIND = {
    (Side.SOUTH, True): "from_charger",
    (Side.SOUTH, False): "to_charger",
    (Side.NORTH, True): "from_csms",
    (Side.NORTH, False): "to_csms",
}


@dataclass(slots=True)
class _Transaction:
    evse_id: int | None
    started: str | None  # the Started event's timestamp
    first_wh: float | None  # the first energy register reading seen
    last_wh: float | None
    id_token: str | None  # masked


class StationActivity:
    """One station's recent activity, fed by its driver (see the module rules)."""

    __slots__ = ("_awaited", "boot", "connectors", "frames", "last_ended", "transactions", "up")

    def __init__(self) -> None:
        # (side, received) -> (wall-clock time, label)
        self.frames: dict[tuple[Side, bool], tuple[float, str]] = {}
        self.up: set[Side] = set()
        self.transactions: dict[str, _Transaction] = {}
        self.connectors: dict[tuple[int, int], str] = {}
        self.boot: str | None = None  # the CSMS's last answer to a BootNotification (pass-through)
        # (transaction id, ended at (wall clock), acknowledged by the CSMS)
        self.last_ended: list[Any] | None = None
        # message id -> what its answer tells: "boot", or "ended:<transaction id>"
        self._awaited: dict[str, str] = {}

    # --- what the driver tells ------------------------------------------------------------------

    def connected(self, side: Side) -> None:
        self.up.add(side)

    def disconnected(self, side: Side) -> None:
        self.up.discard(side)
        if side is Side.NORTH:
            self._awaited.clear()
            self.boot = None

    def received(self, side: Side, frame: str | bytes) -> None:
        label = frame_label(frame)
        self.frames[(side, True)] = (time.time(), _label_text(label.action, label.error_code))
        if self._awaited and side is Side.NORTH and label.action in (CALLRESULT, CALLERROR):
            self._answered(frame, label.action == CALLRESULT)

    def sent(self, side: Side, frame: str) -> None:
        label = frame_label(frame)
        self.frames[(side, False)] = (time.time(), _label_text(label.action, label.error_code))
        if side is Side.NORTH and label.action in _WATCHED:
            self._toward_csms(label.action, frame)

    def link_events(self, events: Iterable[Any]) -> None:
        """What a 104 link delivered (one batch)."""
        last = None
        count = 0
        for event in events:
            last = event
            count += 1
        if last is None:
            return
        what = _link_event_text(last)
        self.frames[(Side.SOUTH, True)] = (
            time.time(),
            what if count == 1 else f"{what} (+{count - 1})",
        )

    def south_effect(self, effect: Any) -> None:
        """What the bridge sent a 104 link (a command, an interrogation, a private ASDU)."""
        self.frames[(Side.SOUTH, False)] = (time.time(), _south_effect_text(effect))

    # --- reading CALLs toward the CSMS -------------------------------------------------------------

    def _toward_csms(self, action: str, frame: str) -> None:
        try:
            message = orjson.loads(frame)
            message_id, payload = message[1], message[3]
        except (orjson.JSONDecodeError, IndexError, KeyError, TypeError):
            return
        if not isinstance(payload, dict) or not isinstance(message_id, str):
            return
        if action == "BootNotification":
            self._await(message_id, "boot")
        elif action == "StatusNotification":
            evse, connector = payload.get("evseId"), payload.get("connectorId")
            status = payload.get("connectorStatus")
            if isinstance(evse, int) and isinstance(connector, int) and isinstance(status, str):
                key = (evse, connector)
                if key in self.connectors or len(self.connectors) < MAX_CONNECTORS:
                    self.connectors[key] = status
        else:
            self._transaction_event(message_id, payload)

    def _transaction_event(self, message_id: str, payload: dict[str, Any]) -> None:
        info = payload.get("transactionInfo")
        transaction_id = info.get("transactionId") if isinstance(info, dict) else None
        if not isinstance(transaction_id, str):
            return
        event = payload.get("eventType")
        energy = register_wh(payload.get("meterValue"))
        if event == "Ended":
            self.transactions.pop(transaction_id, None)
            self.last_ended = [transaction_id, time.time(), False]
            self._await(message_id, "ended:" + transaction_id)
            return
        record = self.transactions.get(transaction_id)
        if record is None:
            if len(self.transactions) >= MAX_TRANSACTIONS:
                self.transactions.pop(next(iter(self.transactions)))
            evse = payload.get("evse")
            token = payload.get("idToken")
            token_text = token.get("idToken") if isinstance(token, dict) else None
            record = self.transactions[transaction_id] = _Transaction(
                evse_id=evse.get("id") if isinstance(evse, dict) else None,
                started=payload.get("timestamp") if event == "Started" else None,
                first_wh=energy,
                last_wh=energy,
                id_token=mask_token(token_text) if isinstance(token_text, str) else None,
            )
        if energy is not None:
            if record.first_wh is None:
                record.first_wh = energy
            record.last_wh = energy

    def _await(self, message_id: str, what: str) -> None:
        if len(self._awaited) >= MAX_AWAITED:
            self._awaited.pop(next(iter(self._awaited)))
        self._awaited[message_id] = what

    def _answered(self, frame: str | bytes, accepted: bool) -> None:
        try:
            message = orjson.loads(frame)
            message_id = message[1]
        except (orjson.JSONDecodeError, IndexError, TypeError):
            return
        what = self._awaited.pop(message_id, None) if isinstance(message_id, str) else None
        if what == "boot":
            payload = message[2] if accepted and len(message) > 2 else None
            status = payload.get("status") if isinstance(payload, dict) else None
            self.boot = status if isinstance(status, str) else "CALLERROR"
        elif (
            what is not None
            and self.last_ended is not None
            and self.last_ended[0] == what.removeprefix("ended:")
        ):
            self.last_ended[2] = accepted


def _label_text(action: str, error_code: str | None) -> str:
    return f"{action} {error_code}" if error_code else action


def _link_event_text(event: Any) -> str:
    from bridge.stations.iec104.southbound import (
        CommandConfirmed,
        LinkDown,
        LinkUp,
        PointUpdate,
        RawAsdu,
    )

    if isinstance(event, PointUpdate):
        return f"point 0x{event.ioa:04X} {event.type_id}"
    if isinstance(event, CommandConfirmed):
        return f"command {event.command_id} {'confirmed' if event.positive else 'refused'}"
    if isinstance(event, LinkUp):
        return "link up"
    if isinstance(event, LinkDown):
        return "link down"
    if isinstance(event, RawAsdu):
        return f"ASDU type {event.type_id}"
    return type(event).__name__


def _south_effect_text(effect: Any) -> str:
    from bridge.stations.iec104.southbound import Interrogate104, Send104Command, Send104Private

    if isinstance(effect, Send104Command):
        return f"command {effect.command_id} 0x{effect.ioa:04X} {effect.purpose}".rstrip()
    if isinstance(effect, Interrogate104):
        return "counter interrogation" if effect.counters else "general interrogation"
    if isinstance(effect, Send104Private):
        return f"ASDU type {effect.type_id} {effect.purpose}".rstrip()
    return type(effect).__name__


def register_wh(meter_values: Any) -> float | None:
    """The last whole-meter energy import register reading of 2.0.1 `meterValue`s, in Wh (None: none)."""
    if not isinstance(meter_values, list):
        return None
    found: float | None = None
    for meter_value in meter_values:
        samples = meter_value.get("sampledValue") if isinstance(meter_value, dict) else None
        for sample in samples if isinstance(samples, list) else ():
            if not isinstance(sample, dict) or sample.get("phase") is not None:
                continue
            if sample.get("measurand", ENERGY) != ENERGY:
                continue
            value = sample.get("value")
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            unit = sample.get("unitOfMeasure")
            unit = unit if isinstance(unit, dict) else {}
            multiplier = unit.get("multiplier", 0)
            factor = 1000.0 if unit.get("unit") == "kWh" else 1.0
            if isinstance(multiplier, int) and -9 <= multiplier <= 9:
                factor *= 10.0**multiplier
            found = float(value) * factor
    return found


# --- the snapshot --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusQuery:
    q: str = ""  # a part of the station id, case-insensitive
    problems: bool = False  # only stations with a problem
    offset: int = 0
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(cls, query: str) -> StatusQuery:
        """From a URL's query string (`q=GB&problems=1&page=2&limit=100`); bad numbers are ignored."""
        fields = parse_qs(query, keep_blank_values=False, max_num_fields=16)

        def number(name: str, default: int) -> int:
            try:
                return int(fields[name][0])
            except (KeyError, ValueError):
                return default

        limit = min(max(number("limit", DEFAULT_LIMIT), 1), MAX_LIMIT)
        page = max(number("page", 1), 1)
        offset = max(number("offset", (page - 1) * limit), 0)
        return cls(
            q=fields.get("q", [""])[0][:200],
            problems=fields.get("problems", ["0"])[0] not in ("", "0", "false"),
            offset=offset,
            limit=limit,
        )


def _iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _started_text(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return _iso(float(value))
    return value if isinstance(value, str) and value else None


def _frames(activity: StationActivity | None) -> dict[str, Any]:
    frames: dict[str, Any] = {}
    if activity is None:
        return frames
    for key, name in _KIND.items():
        seen = activity.frames.get(key)
        frames[name] = None if seen is None else {"what": seen[1], "at": _iso(seen[0])}
    return frames


def _energy(transaction_start_wh: float | None, tracked: _Transaction | None) -> float | None:
    if tracked is None or tracked.last_wh is None:
        return None
    start = transaction_start_wh if transaction_start_wh is not None else tracked.first_wh
    return None if start is None else round(tracked.last_wh - start, 3)


def _station_row(runtime: Runtime, station: Any, loop_now: float) -> dict[str, Any]:
    activity = runtime.activities.get(station.id)
    core: Station104 | Station16 | None = None
    charger: dict[str, Any] = {}
    kind104 = runtime.iec104_links.get(station.id)
    translated = runtime.translated_hosts.get(station.id)
    if kind104 is not None and translated is not None:
        core = translated.core
        link = kind104.link
        charger = {
            "connected": link.is_up,
            # under leases, a station another replica serves is neither up nor down here
            "link": "elsewhere" if translated.elsewhere else "up" if link.is_up else "down",
            "dial": station.dial,
            "last_drop": link.last_drop,
            "problem": link.problem,
        }
    else:
        charger = {"connected": station.id in runtime.chargers_connected}
        if translated is not None:
            core = translated.core
    row: dict[str, Any] = {"id": station.id, "protocol": station.protocol, "charger": charger}
    tracked = activity.transactions if activity is not None else {}
    if core is not None:
        north = core.north
        row["csms"] = {"connected": north.online, "boot": north.boot_status}
        row["connectors"] = [
            {"evse": evse, "connector": connector, "status": north.status_of(evse, connector)}
            for evse, connector in north.connectors()
        ]
        transactions = []
        for transaction in core.ledger.active():
            record = tracked.get(transaction.transaction_id)
            token = (transaction.id_token or {}).get("idToken")
            transactions.append(
                {
                    "id": transaction.transaction_id,
                    "evse": transaction.evse_id,
                    "started": (record.started if record is not None else None)
                    or _started_text(transaction.started_at),
                    "energy_wh": _energy(transaction.meter_start_wh, record),
                    "id_token": mask_token(token)
                    if isinstance(token, str)
                    else (record.id_token if record is not None else None),
                }
            )
        row["transactions"] = transactions
        outbox = north.outbox
        queued_at = outbox.oldest_queued_at()
        row["outbox"] = {
            "depth": len(outbox),
            "oldest_age_s": None if queued_at is None else round(max(0.0, loop_now - queued_at), 1),
        }
    else:  # pass-through: what its frames said
        connected = activity is not None and Side.NORTH in activity.up
        row["csms"] = {
            "connected": connected,
            "boot": (activity.boot if activity is not None else None)
            or ("offline" if not connected else "not answered"),
        }
        row["connectors"] = [
            {"evse": evse, "connector": connector, "status": status}
            for (evse, connector), status in sorted(
                (activity.connectors if activity is not None else {}).items()
            )
        ]
        row["transactions"] = [
            {
                "id": transaction_id,
                "evse": record.evse_id,
                "started": record.started,
                "energy_wh": _energy(None, record),
                "id_token": record.id_token,
            }
            for transaction_id, record in tracked.items()
        ]
        row["outbox"] = {"depth": 0, "oldest_age_s": None}  # pass-through queues nothing
    ended = activity.last_ended if activity is not None else None
    row["last_transaction"] = (
        None
        if ended is None
        else {"id": ended[0], "ended_at": _iso(ended[1]), "acknowledged": ended[2]}
    )
    row["frames"] = _frames(activity)
    return row


def _has_problem(runtime: Runtime, station: Any) -> bool:
    if runtime.served_elsewhere(station.id):
        return False  # another replica serves it (leases): its problems show there
    kind104 = runtime.iec104_links.get(station.id)
    translated = runtime.translated_hosts.get(station.id)
    if kind104 is not None and translated is not None:
        north = translated.core.north
        return not kind104.link.is_up or not north.online or len(north.outbox) > 0
    if station.id not in runtime.chargers_connected:
        return True
    if translated is not None:
        north = translated.core.north
        return not north.online or len(north.outbox) > 0
    activity = runtime.activities.get(station.id)
    return activity is None or Side.NORTH not in activity.up


def snapshot(runtime: Runtime, query: StatusQuery) -> dict[str, Any]:
    """The bridge's line and one page of stations (see the module rules)."""
    import asyncio

    loop_now = asyncio.get_running_loop().time()
    stations = runtime.config.stations
    needle = query.q.casefold()
    chosen = [
        s
        for s in stations
        if (not needle or needle in s.id.casefold())
        and (not query.problems or _has_problem(runtime, s))
    ]
    page = chosen[query.offset : query.offset + query.limit]
    depth, oldest = runtime.outbox_stats()
    store = runtime.store
    lag = runtime.metrics.event_loop_lag_last
    return {
        "bridge": {
            "version": version(),
            "started_at": _iso(runtime.started_wall),
            "uptime_s": None
            if runtime.started_wall is None
            else round(time.time() - runtime.started_wall, 1),
            "store": {
                "path": runtime.config.bridge.store if store is not None else None,
                "open": store is not None,
            },
            "event_loop_lag_s": None if lag is None else round(lag, 4),
            "stations": len(stations),
            "chargers_connected": runtime.chargers_up(),
            "csms_connected": runtime.csms_up(),
            "outbox_depth": depth,
            "outbox_oldest_age_s": round(oldest, 1),
            "ready": all(reason is None for reason in runtime.readiness().values()),
        },
        "query": {"q": query.q, "problems": query.problems},
        "page": {
            "matching": len(chosen),
            "offset": query.offset,
            "limit": query.limit,
            "shown": len(page),
        },
        "stations": [_station_row(runtime, s, loop_now) for s in page],
    }


# --- the page ----------------------------------------------------------------------------------------

_STYLE = """
body{font:14px/1.35 system-ui,sans-serif;margin:1em;color:#222}
h1{font-size:1.3em;margin:0 0 .3em}
.bridge{margin:.3em 0 .8em;padding:.4em .6em;background:#f3f3f3;border-radius:4px}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#fafafa;font-weight:600}
.ok{color:#17702b;font-weight:600}.bad{color:#b3261e;font-weight:600}.dim{color:#777}
.small{font-size:.85em}form{margin:.4em 0}nav{margin:.5em 0}nav a{margin-right:1em}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _flag(ok: bool, yes: str, no: str) -> str:
    return f'<span class="ok">{_e(yes)}</span>' if ok else f'<span class="bad">{_e(no)}</span>'


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def _frame_cell(frame: dict[str, Any] | None) -> str:
    if frame is None:
        return '<span class="dim">—</span>'
    at = frame["at"] or ""
    return f'{_e(frame["what"])} <span class="dim">{_e(at[11:19])}</span>'


_NONE = '<span class="dim">none</span>'


def _row_html(row: dict[str, Any]) -> str:
    charger = row["charger"]
    if charger.get("link") == "elsewhere":
        south = '<span class="dim">served by another replica</span>'
        south += f' <span class="dim">dial-{_e(charger["dial"])}</span>'
    elif "link" in charger:
        south = _flag(charger["connected"], "link up", "link down")
        south += f' <span class="dim">dial-{_e(charger["dial"])}</span>'
        if charger.get("last_drop"):
            south += f'<br><span class="small">last drop: {_e(charger["last_drop"])}</span>'
        if charger.get("problem"):
            south += f'<br><span class="small bad">{_e(charger["problem"])}</span>'
    else:
        south = _flag(charger["connected"], "connected", "not connected")
    csms = row["csms"]
    north = _flag(csms["connected"], "connected", "not connected")
    north += f"<br>boot: {_e(csms['boot'])}"
    connectors = (
        "<br>".join(
            f"{_e(c['evse'])}/{_e(c['connector'])}: {_e(c['status'])}" for c in row["connectors"]
        )
        or '<span class="dim">—</span>'
    )
    transactions = []
    for transaction in row["transactions"]:
        energy = transaction["energy_wh"]
        transactions.append(
            f'<span class="tx">{_e(transaction["id"])}</span> on {_e(transaction["evse"])}'
            f"<br>{'—' if energy is None else f'{energy / 1000:.3f} kWh'}"
            f" since {_e(transaction['started'] or '?')}"
            + (f" · {_e(transaction['id_token'])}" if transaction["id_token"] else "")
        )
    last = row["last_transaction"]
    if last is not None:
        transactions.append(
            f'<span class="small">last ended: {_e(last["id"])} {_e(last["ended_at"])} '
            + _flag(last["acknowledged"], "acknowledged", "not acknowledged")
            + "</span>"
        )
    outbox = row["outbox"]
    queue = (
        f'<span class="bad">{outbox["depth"]} queued</span>, oldest {_duration(outbox["oldest_age_s"])}'
        if outbox["depth"]
        else '<span class="ok">empty</span>'
    )
    frames = row["frames"]
    last_frames = "<br>".join(
        f'<span class="dim">{label}</span> {_frame_cell(frames.get(name))}'
        for name, label in (
            ("from_charger", "charger →"),
            ("to_charger", "→ charger"),
            ("from_csms", "CSMS →"),
            ("to_csms", "→ CSMS"),
        )
    )
    return (
        f'<tr id="station-{_e(row["id"])}"><td><b>{_e(row["id"])}</b></td>'
        f"<td>{_e(row['protocol'])}</td><td>{south}</td><td>{north}</td><td>{connectors}</td>"
        f"<td>{'<br>'.join(transactions) or _NONE}</td>"
        f'<td>{queue}</td><td class="small">{last_frames}</td></tr>'
    )


def _link(query: dict[str, Any], **changes: Any) -> str:
    fields = {**query, **changes}
    return "?" + urlencode({k: v for k, v in fields.items() if v not in ("", None, 0, False)})


def render_html(snap: dict[str, Any]) -> bytes:
    """The page of a `snapshot`."""
    bridge = snap["bridge"]
    page = snap["page"]
    query = snap["query"]
    lag = bridge["event_loop_lag_s"]
    store = bridge["store"]
    head = (
        f"ocpp-bridge {_e(bridge['version'])} · up {_duration(bridge['uptime_s'])}"
        f" (since {_e(bridge['started_at'])}) · "
        + _flag(bridge["ready"], "ready", "not ready")
        + f" · store: {_e(store['path']) if store['open'] else 'none open'}"
        f" · event loop lag: {'—' if lag is None else f'{lag * 1000:.1f} ms'}"
        f"<br>{bridge['stations']} stations · chargers connected {bridge['chargers_connected']}"
        f" · CSMS connected {bridge['csms_connected']} · outbox {bridge['outbox_depth']}"
        f" (oldest {_duration(bridge['outbox_oldest_age_s'])})"
    )
    limit = page["limit"]
    number = page["offset"] // limit + 1
    pages = max(1, -(-page["matching"] // limit))
    base = {"q": query["q"], "problems": 1 if query["problems"] else 0}
    if limit != DEFAULT_LIMIT:
        base["limit"] = limit
    nav = [f"stations {page['offset'] + 1 if page['shown'] else 0}–{page['offset'] + page['shown']}"
           f" of {page['matching']} (page {number} of {pages})"]  # fmt: skip
    if number > 1:
        nav.append(f'<a href="{_e(_link(base, page=number - 1))}">previous</a>')
    if number < pages:
        nav.append(f'<a href="{_e(_link(base, page=number + 1))}">next</a>')
    rows = "".join(_row_html(row) for row in snap["stations"])
    checked = " checked" if query["problems"] else ""
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ocpp-bridge status</title><style>{_STYLE}</style></head>
<body><h1>ocpp-bridge status</h1>
<div class="bridge" id="bridge">{head}</div>
<form method="get" action=""><label>station id contains
<input name="q" value="{_e(query["q"])}" size="20"></label>
<label><input type="checkbox" name="problems" value="1"{checked}> only stations with a problem</label>
<button type="submit">filter</button> <a href="?">all</a></form>
<nav>{" · ".join(nav)}</nav>
<table><thead><tr><th>station</th><th>protocol</th><th>charger side</th><th>CSMS side</th>
<th>connectors</th><th>transactions</th><th>outbox</th><th>last frames</th></tr></thead>
<tbody>{rows}</tbody></table>
<p class="dim small">Reloads every {REFRESH_SECONDS} s. idTokens are masked. JSON: <a href="status.json">status.json</a>
(same filters).</p></body></html>
"""
    return document.encode("utf-8")
