# commhub as one node: `docker compose up` runs several of them on one PostgreSQL (docs/deployment.md).
FROM python:3.11-slim

# Unbuffered, so log lines reach `docker logs` as they happen; no .pyc files written at run time,
# as the user cannot write to site-packages anyway.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Every dependency ships manylinux wheels, so no compiler is needed and one stage suffices.
# pyproject.toml names README.md as the package description, so the build needs it too.
COPY pyproject.toml README.md /src/
COPY commhub /src/commhub
COPY adapters /src/adapters
RUN pip install /src && rm -rf /src

# The working directory is the user's home: `commhub gdpr export` writes there, and without
# PostgreSQL so does SQLite (var/commhub.db; var/ exists so that a volume mounted on it inherits the
# user as owner). The installed code stays read-only to the server.
RUN useradd --system --create-home --home-dir /app --uid 10001 --user-group commhub \
    && install -d -o commhub -g commhub /app/var
WORKDIR /app
USER commhub

# Inside a container the loopback default would be unreachable from the published port.
ENV COMMHUB_SERVER__HOST=0.0.0.0
EXPOSE 8080

# commhub drains on SIGTERM: WebSockets are told to reconnect (1012), requests and commits finish.
STOPSIGNAL SIGTERM
# slim has no curl. Liveness only: /readyz turns 503 while a node drains or its migrations lag,
# which is for a load balancer to act on, not a reason to restart the container.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('COMMHUB_SERVER__PORT', '8080') + '/healthz', timeout=4)"]

CMD ["commhub", "serve"]
