"""The IEC 104 edge: one charger's link, the listener chargers dial in to, and the 104 station kind
(its part of the host that shows a 104 charger to the CSMS as an OCPP 2.0.1 station).
"""
