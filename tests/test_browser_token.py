"""``make test-browser`` starts JupyterLab with a random token, never an empty one (any local
process could otherwise start a kernel), and the browser it drives logs in with that token."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

BROWSER = Path(__file__).resolve().parents[1] / "tools" / "browser"
RUN_SH = (BROWSER / "run.sh").read_text()


def test_run_sh_never_starts_jupyter_without_a_token_or_password() -> None:
    for empty in ("token=''", 'token=""', "token= ", "password=''", 'password=""'):
        assert empty not in RUN_SH
    assert "--ip=127.0.0.1" in RUN_SH, "JupyterLab must stay on loopback"


def test_run_sh_generates_a_fresh_token_and_hands_it_over_in_the_environment() -> None:
    line = re.search(r'^TOKEN="\$\((.*)\)"$', RUN_SH, re.MULTILINE)
    assert line, "run.sh should set TOKEN from a random generator"
    assert "secrets.token_hex" in line.group(1)
    assert re.search(r"^export JUPYTER_TOKEN=\"\$TOKEN\"", RUN_SH, re.MULTILINE)
    # Not on JupyterLab's command line, where `ps` shows it to every local user.
    assert "IdentityProvider.token" not in RUN_SH and "ServerApp.token" not in RUN_SH
    command = line.group(1).replace('"$PY"', sys.executable)
    tokens = [subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True).stdout.strip()
              for _ in range(2)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in tokens) and tokens[0] != tokens[1]


def _drive():
    pytest.importorskip("playwright.sync_api")
    spec = importlib.util.spec_from_file_location("drive", BROWSER / "drive.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("drive", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_browser_opens_each_notebook_with_the_token() -> None:
    url = _drive().notebook_url("http://127.0.0.1:8899", "notebooks/03_adl.ipynb", "ab12")
    assert url == ("http://127.0.0.1:8899/lab/workspaces/dgdm-notebooks-03-adl-ipynb/tree/notebooks/03_adl.ipynb"
                   "?reset&token=ab12")


def test_drive_refuses_to_run_without_a_token(monkeypatch, tmp_path, capsys) -> None:
    drive = _drive()
    monkeypatch.delenv("JUPYTER_TOKEN", raising=False)
    assert drive.main(["--url", "http://127.0.0.1:1", "--root", str(tmp_path)]) == 2
    assert "JUPYTER_TOKEN" in capsys.readouterr().err
