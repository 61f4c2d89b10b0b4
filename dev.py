#!/usr/bin/env python3
"""Set-up and everyday commands for a checkout, needing nothing but Python 3.11+.

    python3 dev.py run [manage.py run options]   install, prepare the database, start the server
    python3 dev.py run --demo [options]           the same with a stand-in model (no key needed) started alongside
    python3 dev.py test [pytest options]          install with test tools, run the whole suite
    python3 dev.py manage COMMAND [options]       any manage.py command, with the project's interpreter
    python3 dev.py demo-model [--port 8765]       only the stand-in model, to start the server against yourself
    python3 dev.py docs [mkdocs serve options]    install the docs tools, serve the documentation (docs/)

They create `.venv/` on first use and reinstall only when a requirements file changes. While `run --demo`
runs, `dev.py manage ...` (e.g. the CLI, `manage run_orchestrator`) uses its demo model too.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
ENV_LOCAL = ROOT / ".env.local"
DEMO_STATE = ROOT / ".demo-model"  # "<pid> <base URL>" while `run --demo` runs (git-ignored)


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
    demo = "--demo" in args
    args = [arg for arg in args if arg != "--demo"]
    ensure_venv("requirements.txt")
    ensure_local_secret_key()
    sh(PYTHON, "manage.py", "init")
    sh(PYTHON, "manage.py", "collectstatic", "--noinput", "--verbosity", "0")
    if not demo:
        os.execv(PYTHON, [str(PYTHON), "manage.py", "run", *args])
    run_with_demo_model(args)


def run_with_demo_model(args: list[str]) -> None:
    """The demo model in a child process on a free port, the server against it; both end together."""
    model = subprocess.Popen(
        [str(PYTHON), "-m", "config.testing.demo_model", "--port", "0", "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    base_url = model.stdout.readline().strip()  # its first line, once it listens
    if not base_url.startswith("http://"):
        model.kill()
        sys.exit("The demo model did not start (see above).")
    DEMO_STATE.write_text(f"{os.getpid()} {base_url}\n")
    env = {**os.environ, **demo_env(base_url), "CONDUIT_DEMO_MODEL": base_url}
    server = subprocess.Popen([str(PYTHON), "manage.py", "run", *args], cwd=ROOT, env=env)
    # SIGTERM to us stops the server (Ctrl-C reaches both children through the terminal's process group).
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())
    try:
        while True:
            try:
                code = server.wait()
                break
            except KeyboardInterrupt:
                continue  # the server got it too and is stopping: wait for it
    finally:
        DEMO_STATE.unlink(missing_ok=True)
        if model.poll() is None:
            model.terminate()
        try:
            model.wait(timeout=10)
        except subprocess.TimeoutExpired:
            model.kill()
    sys.exit(code)


def demo_env(base_url: str) -> dict[str, str]:
    return {"ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": "demo"}


def running_demo_model() -> str | None:
    """The base URL of the demo model a `run --demo` still running started, if any."""
    try:
        pid, base_url = DEMO_STATE.read_text().split()
        if os.name != "nt":  # signal 0 only asks whether it lives (on Windows os.kill would stop it)
            os.kill(int(pid), 0)
    except (OSError, ValueError):
        return None
    return base_url


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
    base_url = running_demo_model()
    if base_url and not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_BASE_URL")):
        print(f"Using the demo model at {base_url} (`dev.py run --demo` is running).", file=sys.stderr, flush=True)
        os.environ.update(demo_env(base_url))
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
