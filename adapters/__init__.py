"""ocpp-bridge's I/O edges: sockets, WebSockets, c104, SQLite, files, the clock, the CLI.

Each adapter feeds the pure core in `bridge` and carries out the effects it returns.
"""
