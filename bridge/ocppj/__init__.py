"""OCPP-J itself, for any station kind: frames, call correlation, schema validation, which party
may send which call, the error vocabulary, and date-times read from a CSMS.
"""
