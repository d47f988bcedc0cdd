"""Operating the bridge: health, readiness and metrics over HTTP, the status page, logs, message
traces, start-up checks, and the runtime policies (event loop, garbage collector, allocator).
"""
