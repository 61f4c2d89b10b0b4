# Conduit: daphne serving HTTP (through Django's WSGI handler), streams and websockets.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=8000

# bubblewrap: agents' run_shell runs only in its sandbox (the container must allow user namespaces,
# else the tool is not offered and the server says so at startup).
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Every package, dependencies too, pinned with its hashes (requirements.lock, made from requirements.txt
# by pip-compile --generate-hashes): a changed or substituted file fails the build.
COPY requirements.lock .
RUN pip install --no-deps --require-hashes -r requirements.lock

COPY . .
# Static files are collected at build time and served by WhiteNoise; no secret is baked in.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0

# data/workspaces exists owned by the app's user: a named volume mounted there starts with that owner.
RUN useradd --create-home --uid 10001 conduit && mkdir -p /app/data/workspaces && chown -R conduit /app
USER conduit

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/health', timeout=4)"

# `init` (migrate + starter data + optional admin from INIT_ADMIN_*) is safe when several
# containers start at once; then the server replaces the shell.
CMD ["sh", "-c", "python manage.py init && exec python manage.py run"]
