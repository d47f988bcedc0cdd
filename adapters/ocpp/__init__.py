"""The OCPP WebSocket edge: the charger-facing server, the CSMS-facing client, the WebSocket
connection they share and its keepalive, and the 1.6J station kind (its part of the host).
"""
