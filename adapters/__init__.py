"""ocpp-bridge's I/O edges: sockets, WebSockets, c104, SQLite, files, the clock, the CLI.

Each adapter feeds the pure core in `bridge` and carries out the effects it returns.

Grouped by edge: `ocpp/` (the WebSocket server and client, the connection, keepalive, the 1.6J station
kind), `iec104/` (links, the dial-in listener, the 104 station kind), `ops/` (health, metrics, status,
logs, traces, start-up checks, runtime policies), `cli/` (commands, demo, simulators); at the top what
they share (connection, driver, the translated-station host, runtime, config, store, leases, TLS).
docs/architecture.md is the map; tests/test_import_graph.py keeps the imports free of cycles.
"""
