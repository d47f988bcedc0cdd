"""The OCPP 2.0.1 station the CSMS sees, shared by every translated station kind: its outbox, the
transaction ledger, the variables the bridge answers itself, device-model reports, and the
reconnection back-off.
"""
