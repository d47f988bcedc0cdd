"""Data only: the shipped mapping tables (IEC 104 point tables, the OCPP 1.6 configuration-key table).

This folder is a package solely so that its YAML files install as package data and can be found with
`importlib.resources.files("mappings")` from any working directory.
"""
