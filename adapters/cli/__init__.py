"""The `ocpp-bridge` command line: its commands, the demo, the simulated chargers, and the
documentation tables rendered from the code.
"""
