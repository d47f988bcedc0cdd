"""`bridge.stations.passthrough`: see the modules it holds."""
