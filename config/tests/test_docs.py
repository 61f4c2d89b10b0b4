"""The documentation: the MkDocs site under docs/ builds with `--strict` (a broken link or anchor, a page left
out of the navigation fails), every setting of config/settings.py is on the configuration page, and the README
stays a short overview holding the two set-up commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_the_docs_build_strictly(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    configuration = (site / "configuration" / "index.html").read_text()
    assert "DATABASE_URL" in configuration
    assert (site / "index.html").is_file() and (site / "search" / "search_index.json").is_file()


def test_every_setting_is_on_the_configuration_page():
    settings_source = (ROOT / "config" / "settings.py").read_text()
    names = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]*)"', settings_source))
    assert {"SECRET_KEY", "DATABASE_URL", "CLAIRE__API_KEY", "SANDBOX_UID"} <= names  # the pattern reads them
    page = (ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(name for name in names if f"`{name}`" not in page)
    assert not missing, f"settings read in config/settings.py but not on docs/configuration.md: {missing}"


def test_the_readme_is_short_and_holds_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) < 250
    # One command installs and starts the server on the embedded defaults, one installs and runs the tests.
    assert "```sh\npython3 dev.py run\n```" in text
    assert "```sh\npython3 dev.py test\n```" in text
    # CI runs the README's test command.
    assert "python3 dev.py test -q" in (ROOT / ".ci" / "run").read_text()
    assert "python3 dev.py docs" in text


def test_the_readme_links_only_to_pages_that_exist():
    text = README.read_text()
    targets = re.findall(r"\]\((docs/[^)#]*)", text)
    assert targets
    for target in targets:
        assert (ROOT / target).exists(), target
