# Two images from one file:
#   docker build --target bridge -t ocpi-beckn-bridge .      production: serve and worker
#   docker build --target mock   -t ocpi-beckn-mock .        the mock CPO (demos, tests)
# Dependencies come from requirements.lock (pinned with hashes: `make lock`), so two builds of
# one commit install the same packages. Both run as an unprivileged user.
FROM python:3.11-slim AS deps
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin obb

FROM deps AS bridge
COPY pyproject.toml README.md LICENSE ./
COPY bridge bridge
COPY config config
# The package only (its dependencies are the lock's); the mock stays out of this image.
RUN pip install --no-deps . && rm -f /usr/local/bin/ocpi-mock \
 && rm -rf bridge build *.egg-info \
 && mkdir -p var/keys && chown -R obb:obb var
ENV BRIDGE_CONFIG=/app/config/bridge.toml BRIDGE_HOST=0.0.0.0 BRIDGE_LOG_FORMAT=json \
    BRIDGE_OCPI_ALLOW_LOOPBACK_URLS=false
USER obb
EXPOSE 8080 9108
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('BRIDGE_PORT', '8080') + '/readyz', timeout=2)"]
STOPSIGNAL SIGTERM
CMD ["bridge", "serve"]

FROM deps AS mock
COPY pyproject.toml README.md LICENSE ./
COPY bridge bridge
COPY ocpi_mock ocpi_mock
COPY config config
RUN pip install --no-deps . && rm -rf bridge ocpi_mock build *.egg-info
ENV MOCK_CPO_HOST=0.0.0.0
USER obb
EXPOSE 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9090/admin/health', timeout=2)"]
CMD ["ocpi-mock", "serve", "--speed", "120"]
