#!/usr/bin/env python3
"""Set-up and everyday commands for a checkout, needing nothing but Python 3.11+.

    python3 dev.py run [manage.py run options]   install, prepare the database, start the server
    python3 dev.py test [pytest options]          install with test tools, run the whole suite
    python3 dev.py manage COMMAND [options]       any manage.py command, with the project's interpreter
    python3 dev.py demo-model [--port 8765]       a stand-in model (echoes you) to try the chat without a key
    python3 dev.py docs [mkdocs serve options]    install the docs tools, serve the documentation (docs/)

Each creates `.venv/` on first use and reinstall only when a requirements file changes.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
ENV_LOCAL = ROOT / ".env.local"


def sh(*args: str | Path, **kwargs) -> None:
    kwargs.setdefault("cwd", ROOT)
    result = subprocess.run([str(a) for a in args], **kwargs)
    if result.returncode != 0:
        sys.exit(result.returncode)


def ensure_venv(requirements: str, *, no_deps: str | None = None) -> None:
    """The venv with `requirements` installed, and `no_deps` (a file of packages whose declared
    dependencies conflict with ours, see requirements-clients.txt) without their dependencies."""
    if sys.version_info < (3, 11):
        sys.exit(f"Conduit needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not PYTHON.exists():
        print(f"Creating {VENV.name}/ ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    # Every requirements file: one may include another (requirements-dev.txt includes requirements-docs.txt).
    files = sorted(ROOT.glob("requirements*.txt"))
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    stamp = VENV / f".installed-{requirements}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(f"Installing {requirements} ...", flush=True)
    sh(PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade", "pip")
    sh(PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", requirements)
    if no_deps:
        sh(PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "-r", no_deps)
    stamp.write_text(digest)


def ensure_local_secret_key() -> None:
    """A fresh checkout gets its own random SECRET_KEY in .env.local (git-ignored)."""
    existing = ENV_LOCAL.read_text() if ENV_LOCAL.exists() else ""
    if "SECRET_KEY" in os.environ or any(line.startswith("SECRET_KEY=") for line in existing.splitlines()):
        return
    with ENV_LOCAL.open("a") as env_file:
        env_file.write(f"SECRET_KEY={secrets.token_urlsafe(50)}\n")
    os.chmod(ENV_LOCAL, 0o600)
    print("Wrote a new SECRET_KEY to .env.local", flush=True)


def run(args: list[str]) -> None:
    ensure_venv("requirements.txt")
    ensure_local_secret_key()
    sh(PYTHON, "manage.py", "init")
    sh(PYTHON, "manage.py", "collectstatic", "--noinput", "--verbosity", "0")
    os.execv(PYTHON, [str(PYTHON), "manage.py", "run", *args])


def ensure_node_packages() -> None:
    """The npm packages some tests drive (the Vercel AI SDK's stream readers), as the lock file pins them."""
    folder = ROOT / "assistant" / "tests" / "js"
    lock = folder / "package-lock.json"
    if not lock.exists() or shutil.which("npm") is None:
        return  # those tests say what is missing
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    stamp = folder / "node_modules" / ".installed-lock"
    if stamp.exists() and stamp.read_text() == digest:
        return
    print("Installing the tests' npm packages ...", flush=True)
    sh("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error", cwd=folder)
    stamp.write_text(digest)


def test(args: list[str]) -> None:
    ensure_venv("requirements-dev.txt", no_deps="requirements-clients.txt")
    ensure_node_packages()
    result = subprocess.run([str(PYTHON), "-m", "pytest", *args], cwd=ROOT)
    sys.exit(result.returncode)


def manage(args: list[str]) -> None:
    ensure_venv("requirements.txt")
    ensure_local_secret_key()
    os.chdir(ROOT)
    os.execv(PYTHON, [str(PYTHON), "manage.py", *args])


def demo_model(args: list[str]) -> None:
    ensure_venv("requirements.txt")
    os.chdir(ROOT)
    os.execv(PYTHON, [str(PYTHON), "-m", "config.testing.demo_model", *args])


def docs(args: list[str]) -> None:
    ensure_venv("requirements-docs.txt")
    os.chdir(ROOT)
    # Beside the server's default port 8000, so both can run at once.
    address = [] if any(a in ("-a", "--dev-addr") or a.startswith("--dev-addr=") for a in args) else ["-a", "127.0.0.1:8001"]
    os.execv(PYTHON, [str(PYTHON), "-m", "mkdocs", "serve", *address, *args])


COMMANDS = {"run": run, "test": test, "manage": manage, "demo-model": demo_model, "docs": docs}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](sys.argv[2:])
