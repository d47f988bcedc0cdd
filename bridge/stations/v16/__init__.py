"""OCPP 1.6J ⇄ OCPP 2.0.1 translation: pure, stateless functions a station core builds on.

Payloads are plain dicts with the exact JSON field names of the wire. Nothing here keeps state, reads a
clock or performs I/O: transaction ids, seqNo, requestIds, idToken aliases, connector lists and times come
in as arguments (functions for lookups). Station → CSMS conversions return payloads plus the `Problem`s
they met; CSMS → station conversions return `Forward`, `ForwardAll`, `Reply` or `Emulate`
(`bridge.stations.v16.outcome`) and never raise on a schema-valid request.

Modules, one concept each:
- `enums`: every enumeration mapping, as frozen tables.
- `timestamps`: 1.6 times → RFC 3339 UTC; unsynchronised clocks refused.
- `meter`: MeterValue[] conversion, Transaction.Begin/End registers, Temperature/RPM readings.
- `id_token`: idTag ⇄ IdTokenType (type inference rule, alias need).
- `charging`: charging profiles, ClearChargingProfile, GetCompositeSchedule, GetChargingProfiles.
- `station`: BootNotification, Heartbeat, StatusNotification (+ error NotifyEvent), DataTransfer up.
- `transactions`: Start/Stop/MeterValues → TransactionEvent or MeterValues.
- `auth`: Authorize, idTagInfo, SendLocalList, GetLocalListVersion, ClearCache.
- `remote`: RequestStart/Stop, Reset, ChangeAvailability, UnlockConnector, TriggerMessage, DataTransfer.
- `reservation`: ReserveNow, CancelReservation, ReservationStatusUpdate.
- `firmware`: UpdateFirmware, GetLog and the status notifications.
- `security`: the security white paper's messages.
- `device_model`, `variables`, `reports`: the configuration-key table, Get/SetVariables, NotifyReport.
- `actions`: the treatment of every 2.0.1 CSMS action and every 1.6 charger action.
"""
