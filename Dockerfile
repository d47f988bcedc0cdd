# ocpp-bridge as a container: docs/operating.md tells how to run it (volumes, environment, health).
#
# Base: CPython 3.11 on Debian bookworm, slim. c104 (IEC 104, GPLv3) publishes manylinux_2_28 wheels for
# CPython 3.11; those of the c104 version this project needs are built for x86_64, so the image is
# built for linux/amd64 (elsewhere pip would have to compile c104 from source).
# tests/test_dockerfile.py checks this file's invariants; CI has no Docker engine.

# --- builder: the project installed into a virtual environment --------------------------------------
FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
COPY pyproject.toml requirements.lock README.md LICENSE ./
COPY bridge ./bridge
COPY adapters ./adapters
COPY mappings ./mappings

# The dependencies exactly as locked, every file checked against its hash (requirements.lock, made from
# pyproject.toml by `make lock`: the bridge depends on websockets' exact behaviour), then the project
# itself without resolving anything again.
RUN python -m venv /opt/ocpp-bridge \
 && /opt/ocpp-bridge/bin/python -m pip install --quiet --upgrade pip \
 && /opt/ocpp-bridge/bin/python -m pip install --quiet --require-hashes -r requirements.lock \
 && /opt/ocpp-bridge/bin/python -m pip install --quiet --no-deps . \
 && /opt/ocpp-bridge/bin/ocpp-bridge --help > /dev/null

# --- runtime: the virtual environment, a non-root user, nothing else --------------------------------
FROM python:3.11-slim-bookworm

ENV PATH=/opt/ocpp-bridge/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN groupadd --system --gid 10001 bridge \
 && useradd --system --uid 10001 --gid bridge --no-create-home \
        --home-dir /var/lib/ocpp-bridge --shell /usr/sbin/nologin bridge \
 && install -d -o bridge -g bridge -m 0750 /var/lib/ocpp-bridge \
 && install -d -m 0755 /etc/ocpp-bridge

COPY --from=builder /opt/ocpp-bridge /opt/ocpp-bridge

USER bridge:bridge
# The store (`[bridge] store = "bridge.db"`, a relative path) lands here.
WORKDIR /var/lib/ocpp-bridge
# /etc/ocpp-bridge: bridge.toml and the mapping tables (mount read-only).
# /var/lib/ocpp-bridge: the SQLite store (a local volume, not a network file system).
VOLUME ["/etc/ocpp-bridge", "/var/lib/ocpp-bridge"]

# 9100: chargers ([south] listen); 8409: /health, /ready, /metrics ([bridge] health). Inside a container
# both must listen on 0.0.0.0 to be reached from outside it; the health check itself uses loopback.
EXPOSE 9100 8409

# No curl in the slim image: the bridge's own Python asks for /health at the configured [bridge] health
# (environment overrides included; a wildcard host is asked on loopback), not at a fixed port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "adapters.ops.healthcheck", "/etc/ocpp-bridge/bridge.toml"]

# `ocpp-bridge run` closes every connection with 1001 and flushes the store on SIGTERM within
# [bridge] shutdown_timeout (10 s): give `docker stop` a longer grace period (`--time 20`).
STOPSIGNAL SIGTERM
ENTRYPOINT ["ocpp-bridge"]
CMD ["run", "--config", "/etc/ocpp-bridge/bridge.toml"]
