"""The device-model variables the bridge itself answers for every translated station (1.6J and IEC 104).

Rules
- Owned, settable and durable (table `owned`, one key per variable, see `SETTABLE`): the station's own
  behaviour toward the CSMS. OCPPCommCtrlr.HeartbeatInterval (its heartbeat; an accepted
  BootNotification's interval is kept too, B01), MessageTimeout[Default] (the CSMS call timeout),
  MessageAttempts[TransactionEvent] and MessageAttemptInterval[TransactionEvent] (the outbox's retries),
  RetryBackOffWaitMinimum / RandomRange / RepeatTimes (the reconnection back-off),
  NetworkProfileConnectionAttempts (kept; with one network profile, the configuration's, there is
  nothing to switch to), and SecurityCtrlr.BasicAuthPassword (WriteOnly: the password of every later
  connection, A01). On 104 stations also (part 2 has them ReadWrite; a 1.6 charger has its own keys):
  SecurityCtrlr.OrganizationName (the O of a client certificate's subject; a 104 station makes no
  certificate signing request, so it is kept and reported for the CSMS, used by nothing) and
  SmartChargingCtrlr.LimitChangeSignificance (percent, 0-100: below it a station may skip telling the
  CSMS of a limit change; a 104 station sends no NotifyChargingLimit nor ChargingRateChanged event, so
  every value is honoured trivially). The
  configuration gives the initial values (`Defaults`); a stored value wins over it. Every write applies
  at once (`apply`), none needs a restart.
- `OwnedValues.write` checks a value before keeping it: an integer within the variable's bounds, a
  password of 16 to 40 printable ASCII characters without blanks (passwordString), an OrganizationName
  of 1 to 64 printable characters (X.509's bound), a decimal within bounds; anything else is
  Rejected with a reason code and changes nothing. An accepted write returns the `Persist` that makes
  it durable; the core emits it before it answers, and applies the value at once.
- Facts (ReadOnly, computed when asked): DeviceDataCtrlr ItemsPerMessage/BytesPerMessage for GetReport,
  GetVariables and SetVariables (`bridge.north.device_data`: the limits the bridge enforces), ClockCtrlr DateTime (the
  bridge's clock) and TimeSource, OCPPCommCtrlr OfflineThreshold (0: every connector's status goes
  out after each reconnect) and NetworkConfigurationPriority (one profile: the configuration),
  SecurityCtrlr SecurityProfile (toward the CSMS) and Identity (the station id), TxCtrlr
  TxStartPoint/TxStopPoint, SampledDataCtrlr TxStartedMeasurands/TxEndedInterval, and the
  availability of the ChargingStation, each EVSE and its Connector (AvailabilityState, Available,
  SupplyPhases without value: unknown, ConnectorType Unknown), and each EVSE's Power (W, the live
  value when the core knows one). Availability states are part of a SummaryInventory.
- Mutability against part 2 (its "Referenced Components and Variables"; checked by a one-off script,
  pinned in tests/core/test_issue16_device_data.py). Part 2 has these ReadWrite; here they are fixed
  facts, and a write is Rejected ReadOnly, because the behaviour behind them is fixed or not built:
  ClockCtrlr.TimeSource (the host's clock; the bridge cannot switch to NTP or GPS),
  OCPPCommCtrlr.NetworkConfigurationPriority (one network profile, the configuration's, and no
  SetNetworkProfile), OCPPCommCtrlr.OfflineThreshold (no threshold is kept: after every reconnect every
  connector's status is sent, as 0 says), SampledDataCtrlr.TxStartedMeasurands, and on
  104 stations TxEndedMeasurands and TxUpdatedMeasurands (the measurands the mapping table maps),
  TxCtrlr.EVConnectionTimeOut and StopTxOnInvalidId,
  OCPPCommCtrlr.ResetRetries, SmartChargingCtrlr.Enabled (the station's
  rules and the mapping table decide them; making them settable means building what they control).
  OCPPCommCtrlr.MessageTimeout[Default] is ReadWrite although part 2 has it ReadOnly: the CSMS sets the
  bridge's call timeout through it (issue 16 item 7).
- Descriptions are kind-neutral (`Owned`); each core turns them into its own device-model entries,
  `extra_104` lists the ones a 1.6 charger answers itself but a 104 charger cannot, and `fallbacks_16`
  the ones a 1.6 charger answers only when its configuration has the key (shown without value else).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from bridge.effects import Persist, Report, Side
from bridge.north.backoff import BackoffPolicy
from bridge.north.device_data import BYTES_PER_MESSAGE, ITEMS_PER_MESSAGE
from bridge.north.station import DEFAULT_HEARTBEAT, NorthSettings, NorthStation
from bridge.ocppj.rpc import Diagnostic
from bridge.stations.iec104.vocabulary import (
    MEASURANDS,  # the 2.0.1 MeasurandEnumType, from the schemas
)

TABLE: Final = "owned"
STATUSES: Final = ("Available", "Occupied", "Reserved", "Unavailable", "Faulted")
TX_POINTS: Final = (
    "ParkingBayOccupancy",
    "EVConnected",
    "Authorized",
    "DataSigned",
    "PowerPathClosed",
    "EnergyTransfer",
)
NETWORK_PROFILE_ATTEMPTS: Final = 3
PERIODS_PER_SCHEDULE: Final = 1024  # what the 2.0.1 schema allows in one ChargingSchedule
# The highest stackLevel a 104 station takes (SmartChargingCtrlr.ProfileStackLevel): a higher one is
# Rejected InvalidStackLevel. The bridge's evaluator has no limit of its own; this one bounds how many
# profiles of one purpose can be valid on one EVSE at a time (9, with K01.FR.06) and is the value 1.6
# chargers commonly declare as ChargeProfileMaxStackLevel.
PROFILE_STACK_LEVEL: Final = 8
FILE_TRANSFER_PROTOCOLS: Final = ("FTP", "FTPS", "HTTP", "HTTPS", "SFTP")
_PASSWORD: Final = re.compile(r"^[\x21-\x7e]{16,40}$")
_MAX_INT: Final = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Owned:
    """One variable the bridge answers, and its value now (None: unset or unknown)."""

    component: str
    variable: str
    value: str | None = None
    variable_instance: str | None = None
    evse: int | None = None
    connector: int | None = None
    data_type: str = "string"
    unit: str | None = None
    mutability: str = "ReadOnly"
    values_list: tuple[str, ...] | None = None
    summary: bool = False


@dataclass(frozen=True, slots=True)
class _Settable:
    key: str  # the store key, and the name the core matches writes by
    component: str
    variable: str
    instance: str | None = None
    unit: str | None = None
    minimum: int = 0
    maximum: int = _MAX_INT
    password: bool = False
    kind: str = "integer"  # integer, string (printable, 1 to `maximum` characters) or decimal
    iec104: bool = False  # owned only on 104 stations (a 1.6 charger has its own key for it)


SETTABLE: Final = (
    _Settable("HeartbeatInterval", "OCPPCommCtrlr", "HeartbeatInterval", unit="s", minimum=1),
    _Settable("MessageTimeout", "OCPPCommCtrlr", "MessageTimeout", "Default", "s", minimum=1),
    _Settable("MessageAttempts", "OCPPCommCtrlr", "MessageAttempts", "TransactionEvent", minimum=1),
    _Settable(
        "MessageAttemptInterval", "OCPPCommCtrlr", "MessageAttemptInterval", "TransactionEvent", "s"
    ),
    _Settable("RetryBackOffWaitMinimum", "OCPPCommCtrlr", "RetryBackOffWaitMinimum", unit="s"),
    _Settable("RetryBackOffRandomRange", "OCPPCommCtrlr", "RetryBackOffRandomRange", unit="s"),
    _Settable("RetryBackOffRepeatTimes", "OCPPCommCtrlr", "RetryBackOffRepeatTimes"),
    _Settable(
        "NetworkProfileConnectionAttempts", "OCPPCommCtrlr", "NetworkProfileConnectionAttempts"
    ),
    _Settable("BasicAuthPassword", "SecurityCtrlr", "BasicAuthPassword", password=True),
    # X.509's upper bound of an organizationName (RFC 5280 ub-organization-name)
    _Settable(
        "OrganizationName",
        "SecurityCtrlr",
        "OrganizationName",
        maximum=64,
        kind="string",
        iec104=True,
    ),
    _Settable(
        "LimitChangeSignificance",
        "SmartChargingCtrlr",
        "LimitChangeSignificance",
        unit="Percent",
        maximum=100,
        kind="decimal",
        iec104=True,
    ),
)
_KEYS: Final = frozenset(s.key for s in SETTABLE)
_BY_IDENTITY: Final = {(s.component, s.variable, s.instance): s for s in SETTABLE}
_DECIMAL: Final = re.compile(r"^\d{1,10}(\.\d{1,6})?$")


def settable_key(component: str, variable: str, instance: str | None) -> str | None:
    """The store key of an owned settable variable, or None."""
    found = _BY_IDENTITY.get((component, variable, instance))
    return found.key if found is not None else None


@dataclass(frozen=True, slots=True)
class Defaults:
    """The configuration's values, used until the CSMS sets another."""

    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    heartbeat_interval: int = DEFAULT_HEARTBEAT
    security_profile: int = 0  # toward the CSMS (a fact, not settable)


@dataclass(frozen=True, slots=True)
class Written:
    status: str  # Accepted or Rejected
    reason: str | None = None  # the statusInfo reasonCode when Rejected
    persist: Persist | None = None


class OwnedValues:
    """The owned settable values of one station: the configuration's, overridden by the store's."""

    def __init__(
        self, state: Mapping[str, Mapping[str, Any]], defaults: Defaults, north: NorthSettings
    ) -> None:
        backoff = defaults.backoff
        self._values: dict[str, int | str] = {
            "HeartbeatInterval": defaults.heartbeat_interval,
            "MessageTimeout": max(1, math.ceil(north.call_timeout)),
            "MessageAttempts": max(1, north.message_attempts),
            "MessageAttemptInterval": math.ceil(north.message_attempt_interval),
            "RetryBackOffWaitMinimum": math.ceil(backoff.wait_minimum),
            "RetryBackOffRandomRange": math.ceil(backoff.random_range),
            "RetryBackOffRepeatTimes": backoff.repeat_times,
            "NetworkProfileConnectionAttempts": NETWORK_PROFILE_ATTEMPTS,
            "LimitChangeSignificance": "0",
        }
        for key, value in state.get(TABLE, {}).items():
            if key in _KEYS:
                self._values[key] = value
        self._base = north

    def get(self, key: str) -> int | str | None:
        return self._values.get(key)

    def integer(self, key: str) -> int:
        return int(self._values[key])

    @property
    def password(self) -> str | None:
        """The BasicAuthPassword the CSMS set (None: the configuration's stays)."""
        value = self._values.get("BasicAuthPassword")
        return value if isinstance(value, str) else None

    def north_settings(self) -> NorthSettings:
        return replace(
            self._base,
            call_timeout=float(self.integer("MessageTimeout")),
            message_attempts=self.integer("MessageAttempts"),
            message_attempt_interval=float(self.integer("MessageAttemptInterval")),
        )

    def backoff(self) -> BackoffPolicy:
        return BackoffPolicy(
            float(self.integer("RetryBackOffWaitMinimum")),
            float(self.integer("RetryBackOffRandomRange")),
            self.integer("RetryBackOffRepeatTimes"),
        )

    def write(self, key: str, text: str) -> Written:
        spec = next(s for s in SETTABLE if s.key == key)
        if spec.password:
            if not _PASSWORD.match(text):
                return Written("Rejected", "InvalidValue")
            self._values[key] = text
            return Written("Accepted", persist=Persist(TABLE, key, text))
        if spec.kind == "string":
            if not text.isprintable() or not text.strip():
                return Written("Rejected", "InvalidValue")
            if len(text) > spec.maximum:
                return Written("Rejected", "TooLargeElement")
            self._values[key] = text
            return Written("Accepted", persist=Persist(TABLE, key, text))
        if spec.kind == "decimal":
            if not _DECIMAL.match(text.strip()):
                return Written("Rejected", "InvalidValue")
            if not spec.minimum <= float(text) <= spec.maximum:
                return Written("Rejected", "ValueOutOfRange")
            self._values[key] = text.strip()
            return Written("Accepted", persist=Persist(TABLE, key, text.strip()))
        if not re.fullmatch(r"-?\d{1,10}", text.strip()):
            return Written("Rejected", "InvalidValue")
        number = int(text)
        if not spec.minimum <= number <= spec.maximum:
            return Written("Rejected", "ValueOutOfRange")
        self._values[key] = number
        return Written("Accepted", persist=Persist(TABLE, key, number))

    def keep(self, key: str, value: int) -> Persist | None:
        """A value the bridge learnt (an accepted boot's interval): kept when it changed."""
        if self._values.get(key) == value:
            return None
        self._values[key] = value
        return Persist(TABLE, key, value)

    def variables(self, iec104: bool = False) -> list[Owned]:
        """The owned settable variables of a 1.6 station, or of a 104 station (`iec104`)."""
        found = []
        for spec in SETTABLE:
            if spec.iec104 and not iec104:
                continue
            value = self._values.get(spec.key)
            found.append(
                Owned(
                    spec.component,
                    spec.variable,
                    None if spec.password or value is None else str(value),
                    variable_instance=spec.instance,
                    data_type="string" if spec.password else spec.kind,
                    unit=spec.unit,
                    mutability="WriteOnly" if spec.password else "ReadWrite",
                )
            )
        return found


@dataclass(frozen=True, slots=True)
class StationFacts:
    """What the core knows when asked."""

    station_id: str
    security_profile: int
    now_iso: str
    station_state: str  # the ChargingStation's AvailabilityState
    evses: Mapping[int, str | None]  # EVSE id → the status the CSMS last got (None: not yet)
    evse_power: Mapping[int, str | None] = field(default_factory=dict)  # EVSE id → W now, if known


def facts(known: StationFacts) -> list[Owned]:
    found: list[Owned] = []
    for instance in ("GetReport", "GetVariables", "SetVariables"):
        found.append(
            Owned(
                "DeviceDataCtrlr",
                "ItemsPerMessage",
                str(ITEMS_PER_MESSAGE),
                instance,
                data_type="integer",
            )
        )
        found.append(
            Owned(
                "DeviceDataCtrlr",
                "BytesPerMessage",
                str(BYTES_PER_MESSAGE),
                instance,
                data_type="integer",
            )
        )
    found += [
        Owned("ClockCtrlr", "DateTime", known.now_iso, data_type="dateTime"),
        Owned(
            "ClockCtrlr",
            "TimeSource",
            "RealTimeClock",
            data_type="SequenceList",
            values_list=(
                "Heartbeat",
                "NTP",
                "GPS",
                "RealTimeClock",
                "MobileNetwork",
                "RadioTimeTransmitter",
            ),
        ),
        Owned("OCPPCommCtrlr", "OfflineThreshold", "0", data_type="integer", unit="s"),
        Owned("OCPPCommCtrlr", "NetworkConfigurationPriority", "0"),
        Owned("SecurityCtrlr", "SecurityProfile", str(known.security_profile), data_type="integer"),
        Owned("SecurityCtrlr", "Identity", known.station_id),
        Owned(
            "TxCtrlr",
            "TxStartPoint",
            "PowerPathClosed",
            data_type="MemberList",
            values_list=TX_POINTS,
        ),
        Owned(
            "TxCtrlr",
            "TxStopPoint",
            "EVConnected,Authorized",
            data_type="MemberList",
            values_list=TX_POINTS,
        ),
        Owned(
            "SampledDataCtrlr",
            "TxStartedMeasurands",
            "Energy.Active.Import.Register",
            data_type="MemberList",
            values_list=MEASURANDS,
        ),
        Owned("SampledDataCtrlr", "TxEndedInterval", "0", data_type="integer", unit="s"),
    ]
    found += _availability("ChargingStation", known.station_state, None, None)
    for evse, status in sorted(known.evses.items()):
        found += _availability("EVSE", status, evse, None)
        found += _availability("Connector", status, evse, 1)
        found.append(
            Owned(
                "EVSE",
                "Power",
                known.evse_power.get(evse),
                evse=evse,
                data_type="decimal",
                unit="W",
            )
        )
        found.append(Owned("Connector", "ConnectorType", "Unknown", evse=evse, connector=1))
    return found


def _availability(
    component: str, state: str | None, evse: int | None, connector: int | None
) -> list[Owned]:
    return [
        Owned(
            component,
            "AvailabilityState",
            state,
            evse=evse,
            connector=connector,
            data_type="OptionList",
            values_list=STATUSES,
            summary=True,
        ),
        Owned(component, "Available", "true", evse=evse, connector=connector, data_type="boolean"),
        Owned(component, "SupplyPhases", None, evse=evse, connector=connector, data_type="integer"),
    ]


def fallbacks_16() -> list[Owned]:
    """Required variables a 1.6 charger gives from configuration keys it may lack
    (SupportedFileTransferProtocols, UnlockConnectorOnEVSideDisconnect, CpoName,
    CertificateStoreMaxLength): without value
    (unknown) when its configuration does not have the key, instead of UnknownVariable."""
    return [
        Owned(
            "OCPPCommCtrlr",
            "FileTransferProtocols",
            None,
            data_type="MemberList",
            values_list=FILE_TRANSFER_PROTOCOLS,
        ),
        Owned("OCPPCommCtrlr", "UnlockOnEVSideDisconnect", None, data_type="boolean"),
        Owned("SecurityCtrlr", "OrganizationName", None),
        Owned("SecurityCtrlr", "CertificateEntries", None, data_type="integer"),
    ]


def extra_104(installed_profiles: int = 0) -> list[Owned]:
    """Required variables a 1.6 charger answers from its configuration and a 104 charger cannot:
    authorization and transaction settings the bridge does not change, no file transfer and no
    certificates (no GetLog, UpdateFirmware or certificate use cases), fixed cables, and the smart
    charging the bridge evaluates itself (`installed_profiles`: the profiles it keeps)."""
    return [
        Owned("OCPPCommCtrlr", "UnlockOnEVSideDisconnect", "false", data_type="boolean"),
        Owned(
            "OCPPCommCtrlr",
            "FileTransferProtocols",
            "",
            data_type="MemberList",
            values_list=FILE_TRANSFER_PROTOCOLS,
        ),
        Owned("SecurityCtrlr", "CertificateEntries", "0", data_type="integer"),
        Owned(
            "SmartChargingCtrlr",
            "Entries",
            str(installed_profiles),
            variable_instance="ChargingProfiles",
            data_type="integer",
        ),
        Owned(
            "SmartChargingCtrlr",
            "PeriodsPerSchedule",
            str(PERIODS_PER_SCHEDULE),
            data_type="integer",
        ),
        Owned(
            "SmartChargingCtrlr", "ProfileStackLevel", str(PROFILE_STACK_LEVEL), data_type="integer"
        ),
        Owned("AuthCtrlr", "AuthorizeRemoteStart", "false", data_type="boolean"),
        Owned("AuthCtrlr", "LocalAuthorizeOffline", "false", data_type="boolean"),
        Owned("AuthCtrlr", "LocalPreAuthorize", "false", data_type="boolean"),
        Owned("TxCtrlr", "EVConnectionTimeOut", "0", data_type="integer", unit="s"),
        Owned("TxCtrlr", "StopTxOnInvalidId", "false", data_type="boolean"),
        Owned("TxCtrlr", "StopTxOnEVSideDisconnect", "true", data_type="boolean"),
        Owned("OCPPCommCtrlr", "ResetRetries", "0", data_type="integer"),
        Owned(
            "SampledDataCtrlr",
            "TxEndedMeasurands",
            "Energy.Active.Import.Register",
            data_type="MemberList",
            values_list=MEASURANDS,
        ),
    ]


def write(
    owned: OwnedValues, north: NorthStation, key: str, text: str, effects: list[Any]
) -> Written:
    """A CSMS write of an owned variable (B05): kept, made durable (its `Persist` appended to
    `effects`), applied to the station at once (`apply`: MessageTimeout from the next CALL, the
    heartbeat counted from the last one, the outbox's next retry). A password change is logged without
    its value (A01.FR.11, A01.FR.12) and used from the next connection."""
    written = owned.write(key, text)
    if written.persist is None:
        return written
    effects.append(written.persist)
    apply(owned, north)
    if key == "BasicAuthPassword":
        effects.append(
            Report(
                Side.NORTH,
                Diagnostic(
                    "security-event",
                    "BasicAuthPassword changed by the CSMS (A01): used from the next connection",
                ),
            )
        )
    return written


def apply(owned: OwnedValues, north: NorthStation) -> None:
    """The owned values the running station uses: its heartbeat, its call timeout and its outbox's
    retries (the back-off and the password are read by the adapter before every connection attempt)."""
    north.heartbeat_interval = owned.integer("HeartbeatInterval")
    north.call_timeout = float(owned.integer("MessageTimeout"))
    north.outbox.message_attempts = owned.integer("MessageAttempts")
    north.outbox.attempt_interval = float(owned.integer("MessageAttemptInterval"))


def boot_answered(
    owned: OwnedValues, north: NorthStation, response: Mapping[str, Any]
) -> Persist | None:
    """B01: an accepted BootNotification's interval becomes the HeartbeatInterval (kept); an interval
    of 0 leaves the station's own."""
    if response.get("status") != "Accepted":
        return None
    interval = response.get("interval", 0)
    if isinstance(interval, int) and interval > 0:
        return owned.keep("HeartbeatInterval", interval)
    north.heartbeat_interval = owned.integer("HeartbeatInterval")
    return None
