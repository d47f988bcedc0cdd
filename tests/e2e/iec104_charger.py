"""The simulated IEC 104 charger of the tests: the one the demo ships (`adapters.iec104_sim`).

Tests create it without `react`, so every point changes only when the test says so.
"""

from adapters.iec104_sim import HOST, Charger104, free_port

__all__ = ["HOST", "Charger104", "free_port"]
