"""Every enumeration mapping between OCPP 1.6J (+ security white paper) and OCPP 2.0.1, as frozen tables.

Rules
- Tables are read-only mappings (`MappingProxyType`), named after the 1.6 or 2.0.1 type and suffixed with
  the direction: `_UP` maps a 1.6 value to 2.0.1 (charger → CSMS), `_DOWN` a 2.0.1 value to 1.6.
  A value absent from a `_DOWN` table has no 1.6 counterpart: the caller answers the CSMS truthfully
  instead of guessing (tests/core/test_v16_enums.py checks every table against both versions' schemas).
- Where 2.0.1 has more values than 1.6, the extra ones collapse to the nearest 1.6 value stated here,
  never to a value that claims more than happened:
  - AuthorizationStatus: NoCredit, NotAllowedTypeEVSE, NotAtThisLocation, NotAtThisTime, Unknown → Invalid.
  - UnlockStatus 1.6 NotSupported → UnlockFailed (2.0.1 has no "not supported"; the connector stays locked).
  - ChangeConfiguration NotSupported → SetVariable UnknownVariable (1.6 says the key does not exist).
  - SendLocalList NotSupported → Failed; SetChargingProfile NotSupported → Rejected.
  - DiagnosticsStatus UploadFailed → UploadFailure (a spelling difference only).
- ChargePointStatus → ConnectorStatus + chargingState (design choice, see `CONNECTOR_STATUS_UP`): the
  chargingState is what the status says about energy flow; the core only sends it when it has an open
  transaction on that EVSE.
- Stop reasons (design choice, `STOP_REASON_UP`): same-named reasons are kept; HardReset and SoftReset →
  ImmediateReset (2.0.1 has no OnIdle stop reason: a reset that stops a transaction is immediate);
  UnlockCommand → stoppedReason Other with triggerReason UnlockCommand; a missing reason means Local.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final


def _frozen(table: dict[str, str]) -> Mapping[str, str]:
    return MappingProxyType(table)


def _identity(*values: str) -> Mapping[str, str]:
    return MappingProxyType({value: value for value in values})


# --- connector status (1.6 StatusNotification) --------------------------------------------------

#: 1.6 ChargePointStatus → (2.0.1 ConnectorStatusEnumType, ChargingStateEnumType or None).
#: Preparing and Finishing mean a plug or a user occupies the connector without energy flowing:
#: EVConnected. Available means nothing is plugged: Idle (only sent while a transaction is open, e.g. one
#: that started on authorization before the cable was plugged in).
CONNECTOR_STATUS_UP: Final[Mapping[str, tuple[str, str | None]]] = MappingProxyType(
    {
        "Available": ("Available", "Idle"),
        "Preparing": ("Occupied", "EVConnected"),
        "Charging": ("Occupied", "Charging"),
        "SuspendedEVSE": ("Occupied", "SuspendedEVSE"),
        "SuspendedEV": ("Occupied", "SuspendedEV"),
        "Finishing": ("Occupied", "EVConnected"),
        "Reserved": ("Reserved", None),
        "Unavailable": ("Unavailable", None),
        "Faulted": ("Faulted", None),
    }
)

#: How bad a 1.6 status is when the station (connector 0) and a connector disagree: the worse one wins.
STATUS_SEVERITY: Final[Mapping[str, int]] = MappingProxyType({"Faulted": 2, "Unavailable": 1})

# --- error codes (1.6 StatusNotification.errorCode → NotifyEvent) ----------------------------------

#: 1.6 ChargePointErrorCode → (2.0.1 component, variable, whether the component sits on the connector).
#: Standard components and variables of the 2.0.1 device model (appendix 3); the 1.6 code itself travels
#: as the event's techCode. NoError raises nothing: it clears the error reported before it.
ERROR_CODE_EVENT: Final[Mapping[str, tuple[str, str, bool]]] = MappingProxyType(
    {
        "ConnectorLockFailure": ("ConnectorPlugRetentionLock", "Problem", True),
        "EVCommunicationError": ("ConnectedEV", "Problem", False),
        "GroundFailure": ("RCD", "Tripped", False),
        "HighTemperature": ("TemperatureSensor", "Problem", False),
        "InternalError": ("Controller", "Problem", False),
        "LocalListConflict": ("LocalAuthListCtrlr", "Problem", False),
        "OtherError": ("Connector", "Problem", True),
        "OverCurrentFailure": ("OverCurrentProtection", "Tripped", False),
        "OverVoltage": ("ElectricalFeed", "Problem", False),
        "PowerMeterFailure": ("ControlMetering", "Problem", False),
        "PowerSwitchFailure": ("PowerContactor", "Problem", False),
        "ReaderFailure": ("TokenReader", "Problem", False),
        "ResetFailure": ("Controller", "Problem", False),
        "UnderVoltage": ("ElectricalFeed", "Problem", False),
        "WeakSignal": ("DataLink", "Problem", False),
    }
)
NO_ERROR: Final = "NoError"

# --- transactions --------------------------------------------------------------------------------

#: 1.6 StopTransaction.reason → (2.0.1 stoppedReason, triggerReason). Key "" is a missing reason.
STOP_REASON_UP: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "": ("Local", "StopAuthorized"),
        "EmergencyStop": ("EmergencyStop", "AbnormalCondition"),
        "EVDisconnected": ("EVDisconnected", "EVCommunicationLost"),
        "HardReset": ("ImmediateReset", "ResetCommand"),
        "SoftReset": ("ImmediateReset", "ResetCommand"),
        "Local": ("Local", "StopAuthorized"),
        "Other": ("Other", "AbnormalCondition"),
        "PowerLoss": ("PowerLoss", "AbnormalCondition"),
        "Reboot": ("Reboot", "AbnormalCondition"),
        "Remote": ("Remote", "RemoteStop"),
        "UnlockCommand": ("Other", "UnlockCommand"),
        "DeAuthorized": ("DeAuthorized", "Deauthorized"),
    }
)

#: 1.6 ReadingContext → the triggerReason of a TransactionEvent(Updated) carrying such values.
CONTEXT_TRIGGER_REASON: Final[Mapping[str, str]] = _frozen(
    {
        "Sample.Clock": "MeterValueClock",
        "Trigger": "Trigger",
        "Sample.Periodic": "MeterValuePeriodic",
        "Interruption.Begin": "ChargingStateChanged",
        "Interruption.End": "ChargingStateChanged",
        "Transaction.Begin": "MeterValuePeriodic",
        "Transaction.End": "MeterValuePeriodic",
        "Other": "MeterValuePeriodic",
    }
)

# --- authorization ---------------------------------------------------------------------------------

AUTHORIZATION_STATUS_UP: Final = _identity(
    "Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"
)
AUTHORIZATION_STATUS_DOWN: Final = _frozen(
    {
        "Accepted": "Accepted",
        "Blocked": "Blocked",
        "ConcurrentTx": "ConcurrentTx",
        "Expired": "Expired",
        "Invalid": "Invalid",
        "NoCredit": "Invalid",
        "NotAllowedTypeEVSE": "Invalid",
        "NotAtThisLocation": "Invalid",
        "NotAtThisTime": "Invalid",
        "Unknown": "Invalid",
    }
)

UPDATE_TYPE_DOWN: Final = _identity("Differential", "Full")
#: 1.6 UpdateStatus (SendLocalList.conf) → 2.0.1 SendLocalListStatusEnumType.
SEND_LOCAL_LIST_STATUS_UP: Final = _frozen(
    {
        "Accepted": "Accepted",
        "Failed": "Failed",
        "NotSupported": "Failed",
        "VersionMismatch": "VersionMismatch",
    }
)
CLEAR_CACHE_STATUS_UP: Final = _identity("Accepted", "Rejected")

# --- station → CSMS registration and data transfer ----------------------------------------------------

REGISTRATION_STATUS_DOWN: Final = _identity("Accepted", "Pending", "Rejected")
DATA_TRANSFER_STATUS: Final = _identity(
    "Accepted", "Rejected", "UnknownMessageId", "UnknownVendorId"
)

# --- remote control ------------------------------------------------------------------------------------

REMOTE_START_STOP_STATUS_UP: Final = _identity("Accepted", "Rejected")
RESET_TYPE_DOWN: Final = _frozen({"Immediate": "Hard", "OnIdle": "Soft"})
RESET_STATUS_UP: Final = _identity("Accepted", "Rejected")
OPERATIONAL_STATUS_DOWN: Final = _identity("Operative", "Inoperative")
AVAILABILITY_STATUS_UP: Final = _identity("Accepted", "Rejected", "Scheduled")
UNLOCK_STATUS_UP: Final = _frozen(
    {"Unlocked": "Unlocked", "UnlockFailed": "UnlockFailed", "NotSupported": "UnlockFailed"}
)
TRIGGER_STATUS_UP: Final = _identity("Accepted", "Rejected", "NotImplemented")

#: 2.0.1 MessageTriggerEnumType → (1.6 action, 1.6 requestedMessage) for the plain TriggerMessage.
TRIGGER_MESSAGE_DOWN: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "BootNotification": ("TriggerMessage", "BootNotification"),
        "LogStatusNotification": ("TriggerMessage", "DiagnosticsStatusNotification"),
        "FirmwareStatusNotification": ("TriggerMessage", "FirmwareStatusNotification"),
        "MeterValues": ("TriggerMessage", "MeterValues"),
        "StatusNotification": ("TriggerMessage", "StatusNotification"),
        # No 1.6 TransactionEvent: a triggered MeterValues of the transaction's connector comes back as
        # MeterValues with a transactionId, which the core sends as TransactionEvent(Trigger).
        "TransactionEvent": ("TriggerMessage", "MeterValues"),
        "SignChargingStationCertificate": ("ExtendedTriggerMessage", "SignChargePointCertificate"),
    }
)
#: 2.0.1 requested messages that may also go as the security white paper's ExtendedTriggerMessage.
EXTENDED_TRIGGER_DOWN: Final = _frozen(
    {
        "BootNotification": "BootNotification",
        "LogStatusNotification": "LogStatusNotification",
        "FirmwareStatusNotification": "FirmwareStatusNotification",
        "Heartbeat": "Heartbeat",
        "MeterValues": "MeterValues",
        "SignChargingStationCertificate": "SignChargePointCertificate",
        "StatusNotification": "StatusNotification",
    }
)
#: Requested messages the bridge produces itself (it answers the charger's heartbeats locally).
TRIGGER_EMULATED: Final = frozenset({"Heartbeat"})
#: Requested messages with no 1.6 counterpart: answered NotImplemented.
TRIGGER_NOT_IMPLEMENTED: Final = frozenset(
    {"SignV2GCertificate", "SignCombinedCertificate", "PublishFirmwareStatusNotification"}
)

# --- reservations -----------------------------------------------------------------------------------------

RESERVE_NOW_STATUS_UP: Final = _identity(
    "Accepted", "Faulted", "Occupied", "Rejected", "Unavailable"
)
CANCEL_RESERVATION_STATUS_UP: Final = _identity("Accepted", "Rejected")

# --- smart charging ---------------------------------------------------------------------------------------

#: ChargingStationExternalConstraints has no 1.6 purpose (and K01.FR.22 forbids a CSMS to set it).
CHARGING_PROFILE_PURPOSE_DOWN: Final = _frozen(
    {
        "ChargingStationMaxProfile": "ChargePointMaxProfile",
        "TxDefaultProfile": "TxDefaultProfile",
        "TxProfile": "TxProfile",
    }
)
CHARGING_PROFILE_PURPOSE_UP: Final = _frozen(
    {v16: v201 for v201, v16 in CHARGING_PROFILE_PURPOSE_DOWN.items()}
)
CHARGING_PROFILE_KIND_DOWN: Final = _identity("Absolute", "Recurring", "Relative")
RECURRENCY_KIND_DOWN: Final = _identity("Daily", "Weekly")
CHARGING_RATE_UNIT: Final = _identity("A", "W")
CHARGING_PROFILE_STATUS_UP: Final = _frozen(
    {"Accepted": "Accepted", "Rejected": "Rejected", "NotSupported": "Rejected"}
)
CLEAR_CHARGING_PROFILE_STATUS_UP: Final = _identity("Accepted", "Unknown")
COMPOSITE_SCHEDULE_STATUS_UP: Final = _identity("Accepted", "Rejected")

# --- device model -------------------------------------------------------------------------------------------

#: 1.6 ConfigurationStatus (ChangeConfiguration.conf) → 2.0.1 SetVariableStatusEnumType.
CONFIGURATION_STATUS_UP: Final = _frozen(
    {
        "Accepted": "Accepted",
        "Rejected": "Rejected",
        "RebootRequired": "RebootRequired",
        "NotSupported": "UnknownVariable",
    }
)

# --- firmware and logs ----------------------------------------------------------------------------------------

FIRMWARE_STATUS_UP: Final = _identity(
    "Downloaded",
    "DownloadFailed",
    "Downloading",
    "Idle",
    "InstallationFailed",
    "Installing",
    "Installed",
)
#: The security white paper's FirmwareStatusEnumType is 2.0.1's, value for value.
SIGNED_FIRMWARE_STATUS_UP: Final = _identity(
    "Downloaded",
    "DownloadFailed",
    "Downloading",
    "DownloadScheduled",
    "DownloadPaused",
    "Idle",
    "InstallationFailed",
    "Installing",
    "Installed",
    "InstallRebooting",
    "InstallScheduled",
    "InstallVerificationFailed",
    "InvalidSignature",
    "SignatureVerified",
)
DIAGNOSTICS_STATUS_UP: Final = _frozen(
    {
        "Idle": "Idle",
        "Uploaded": "Uploaded",
        "UploadFailed": "UploadFailure",
        "Uploading": "Uploading",
    }
)
#: The security white paper's UploadLogStatusEnumType (2.0.1 adds AcceptedCanceled).
LOG_STATUS_UP: Final = _identity(
    "BadMessage",
    "Idle",
    "NotSupportedOperation",
    "PermissionDenied",
    "Uploaded",
    "UploadFailure",
    "Uploading",
)
LOG_TYPE_DOWN: Final = _identity("DiagnosticsLog", "SecurityLog")
GET_LOG_STATUS_UP: Final = _identity("Accepted", "Rejected", "AcceptedCanceled")
SIGNED_UPDATE_FIRMWARE_STATUS_UP: Final = _identity(
    "Accepted", "Rejected", "AcceptedCanceled", "InvalidCertificate", "RevokedCertificate"
)

# --- security white paper ---------------------------------------------------------------------------------------

#: 2.0.1 certificate types (InstallCertificate, GetInstalledCertificateIds) → 1.6 CertificateUseEnumType.
#: The V2G and mobility-operator types have no 1.6 counterpart.
CERTIFICATE_USE_DOWN: Final = _frozen(
    {
        "CSMSRootCertificate": "CentralSystemRootCertificate",
        "ManufacturerRootCertificate": "ManufacturerRootCertificate",
    }
)
CERTIFICATE_USE_UP: Final = _frozen({v16: v201 for v201, v16 in CERTIFICATE_USE_DOWN.items()})
INSTALL_CERTIFICATE_STATUS_UP: Final = _identity("Accepted", "Failed", "Rejected")
DELETE_CERTIFICATE_STATUS_UP: Final = _identity("Accepted", "Failed", "NotFound")
CERTIFICATE_SIGNED_STATUS_UP: Final = _identity("Accepted", "Rejected")
GET_INSTALLED_CERTIFICATE_STATUS_UP: Final = _identity("Accepted", "NotFound")
HASH_ALGORITHM: Final = _identity("SHA256", "SHA384", "SHA512")
GENERIC_STATUS_DOWN: Final = _identity("Accepted", "Rejected")

# --- meter values ------------------------------------------------------------------------------------------------

#: 1.6 UnitOfMeasure → 2.0.1 unit (appendix 7 spelling). Every 1.6 unit is kept as a unit, multiplier 0.
UNIT_UP: Final = _frozen(
    {
        "Wh": "Wh",
        "kWh": "kWh",
        "varh": "varh",
        "kvarh": "kvarh",
        "W": "W",
        "kW": "kW",
        "VA": "VA",
        "kVA": "kVA",
        "var": "var",
        "kvar": "kvar",
        "A": "A",
        "V": "V",
        "K": "K",
        "Celcius": "Celsius",  # the 1.6 schema's misspelling
        "Celsius": "Celsius",
        "Fahrenheit": "Fahrenheit",
        "Percent": "Percent",
        "Hertz": "Hz",  # in the `ocpp` package's 1.6 MeterValues schema, not in the OCA's
    }
)

#: The SI unit of a measurand, used when a 1.6 sampled value has no unit (1.6 only defines the default
#: "Wh" for energy; without a unit a 2.0.1 reader would assume Wh for every measurand).
MEASURAND_DEFAULT_UNIT: Final = _frozen(
    {
        "Energy.Active.Export.Register": "Wh",
        "Energy.Active.Import.Register": "Wh",
        "Energy.Reactive.Export.Register": "varh",
        "Energy.Reactive.Import.Register": "varh",
        "Energy.Active.Export.Interval": "Wh",
        "Energy.Active.Import.Interval": "Wh",
        "Energy.Reactive.Export.Interval": "varh",
        "Energy.Reactive.Import.Interval": "varh",
        "Power.Active.Export": "W",
        "Power.Active.Import": "W",
        "Power.Offered": "W",
        "Power.Reactive.Export": "var",
        "Power.Reactive.Import": "var",
        "Current.Import": "A",
        "Current.Export": "A",
        "Current.Offered": "A",
        "Voltage": "V",
        "Frequency": "Hz",
        "SoC": "Percent",
        "Temperature": "Celsius",
        "RPM": "RPM",
    }
)

#: 1.6 measurands that 2.0.1 MeasurandEnumType lacks → the standard device-model variable that carries
#: them in a NotifyEvent instead (appendix 3: generic variables Temperature and FanSpeed).
V16_ONLY_MEASURAND_VARIABLE: Final = _frozen({"Temperature": "Temperature", "RPM": "FanSpeed"})

READING_CONTEXT: Final = _identity(
    "Interruption.Begin",
    "Interruption.End",
    "Sample.Clock",
    "Sample.Periodic",
    "Transaction.Begin",
    "Transaction.End",
    "Trigger",
    "Other",
)
PHASE: Final = _identity("L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1")
LOCATION: Final = _identity("Cable", "EV", "Inlet", "Outlet", "Body")

# --- boot ----------------------------------------------------------------------------------------------------------

#: 1.6 BootNotification has no reason; the core passes one of these (PowerUp on a fresh connection).
BOOT_REASONS: Final = frozenset(
    {
        "ApplicationReset",
        "FirmwareUpdate",
        "LocalReset",
        "PowerUp",
        "RemoteReset",
        "ScheduledReset",
        "Triggered",
        "Unknown",
        "Watchdog",
    }
)
