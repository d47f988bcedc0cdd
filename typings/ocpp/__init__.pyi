# Stubs for the parts of the `ocpp` package (which ships no types) that adapters/ use: its
# ChargePoint base class and `on` decorator (adapters/cli/demo.py). Only what is used is declared.
