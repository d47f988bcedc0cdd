"""One package per station kind, each with its `core.py` (a `bridge.effects.StationCore`): a 2.0.1
charger relayed as itself (`passthrough`), a 1.6J charger translated (`v16`), an IEC 104
charger translated through a mapping table (`iec104`).
"""
