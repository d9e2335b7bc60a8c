#!/usr/bin/env bash
# make test-browser: start a throwaway JupyterLab on loopback, drive Debian's Chromium through it with
# Playwright (tools/browser/drive.py), move every slider of every notebook that has sliders.
# Usage: bash tools/browser/run.sh [notebooks/NN_name.ipynb ...]   (default: every slider notebook)
# Settings (environment): DGDM_BROWSER_ROOT (folder JupyterLab serves; default the repository),
# DGDM_BROWSER_BUDGET_S (seconds for the whole drive; default 270), DGDM_CHROMIUM (default /usr/bin/chromium),
# DGDM_SCREENSHOTS (default build/screenshots). Details: the docstring of tools/browser/drive.py.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
PY="$REPO/.venv/bin/python"
JUPYTER="$REPO/.venv/bin/jupyter"
CHROMIUM="${DGDM_CHROMIUM:-/usr/bin/chromium}"
ROOT="$(cd "${DGDM_BROWSER_ROOT:-$REPO}" && pwd)"
OUT_DIR="${DGDM_SCREENSHOTS:-$REPO/build/screenshots}"
BUDGET_S="${DGDM_BROWSER_BUDGET_S:-270}"

say() { echo "[test-browser] $*"; }

ensure_chromium() {
    [ -x "$CHROMIUM" ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "$CHROMIUM not found: installing Debian's chromium with apt-get (running as root)"
        if ! { apt-get update -qq &&
               DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; }; then
            say "apt-get could not install chromium (no network, or no Debian package source?)."
            say "Install Debian's chromium by hand, or set DGDM_CHROMIUM to a chromium binary, and re-run."
            exit 2
        fi
        [ -x "$CHROMIUM" ] && return 0
        say "apt-get finished but $CHROMIUM is still missing; set DGDM_CHROMIUM to the chromium binary."
        exit 2
    fi
    say "expected a Chromium browser at $CHROMIUM, found none, and cannot install it (not root, or no apt-get)."
    say "Install it, then re-run:   sudo apt-get install -y chromium"
    say "or point DGDM_CHROMIUM at an existing chromium binary. This test never downloads a browser."
    exit 2
}

ensure_python() {
    if [ ! -x "$PY" ]; then
        say "expected the virtualenv at $REPO/.venv, found none: run 'make setup' first."
        exit 2
    fi
    if ! "$PY" -c "import playwright.sync_api, jupyterlab, ipywidgets" 2>/dev/null; then
        say "the virtualenv lacks playwright, jupyterlab or ipywidgets: run 'make setup'"
        say "(or: .venv/bin/pip install -e '.[book,test,browser]'); never 'playwright install'."
        exit 2
    fi
}

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# JupyterLab user settings for the run: no autosave (the committed .ipynb files must stay output-free),
# every cell in the DOM (windowing would hide off-screen sliders), no news or update pop-ups.
write_lab_settings() {
    local settings="$1/lab/user-settings/@jupyterlab"
    mkdir -p "$settings/docmanager-extension" "$settings/notebook-extension" "$settings/apputils-extension"
    echo '{"autosave": false}' > "$settings/docmanager-extension/plugin.jupyterlab-settings"
    echo '{"windowingMode": "none"}' > "$settings/notebook-extension/tracker.jupyterlab-settings"
    echo '{"fetchNews": "false", "checkForUpdates": false}' > "$settings/apputils-extension/notification.jupyterlab-settings"
}

JUPYTER_PID=""
DRIVE_PID=""
WORK=""
SHOW_LOG=1
cleanup() {
    local status=$?
    if [ -n "$DRIVE_PID" ] && kill -0 "$DRIVE_PID" 2>/dev/null; then
        kill -TERM "$DRIVE_PID" 2>/dev/null || true  # timeout passes it on to drive.py
        wait "$DRIVE_PID" 2>/dev/null || true
    fi
    if [ -n "$JUPYTER_PID" ] && kill -0 "$JUPYTER_PID" 2>/dev/null; then
        kill -TERM "$JUPYTER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$JUPYTER_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$JUPYTER_PID" 2>/dev/null || true
    fi
    # Kernels that outlived the server: only those started from this run's own runtime folder.
    if [ -n "$WORK" ]; then
        for proc in /proc/[0-9]*; do
            if { tr '\0' ' ' < "$proc/cmdline"; } 2>/dev/null | grep -qF "$WORK/runtime/"; then
                kill -KILL "${proc#/proc/}" 2>/dev/null || true
            fi
        done
        if [ "$status" != 0 ] && [ "$SHOW_LOG" = 1 ] && [ -f "$WORK/jupyter.log" ]; then
            say "last lines of the JupyterLab log:"
            tail -n 25 "$WORK/jupyter.log" | sed 's/^/    /'
        fi
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_chromium
ensure_python

WORK="$(mktemp -d -t dgdm-browser.XXXXXX)"
export JUPYTER_CONFIG_DIR="$WORK/config" JUPYTER_RUNTIME_DIR="$WORK/runtime" JUPYTER_DATA_DIR="$WORK/data"
export IPYTHONDIR="$WORK/ipython"
export DGDM_QUICK=1 PYDEVD_DISABLE_FILE_VALIDATION=1
# The Makefile exports MPLBACKEND=Agg; a reader's `jupyter lab` kernel uses the inline backend, so the
# browser test does too (under Agg every figure reaches the page as "<Figure size ...>" text).
# DGDM_BROWSER_KEEP_MPLBACKEND=1 keeps the inherited value, to test a kernel as `make lab` starts it.
[ "${DGDM_BROWSER_KEEP_MPLBACKEND:-0}" = 1 ] || unset MPLBACKEND
write_lab_settings "$JUPYTER_CONFIG_DIR"

PORT="$(free_port)"
ROOT_FLAG=()
[ "$(id -u)" = 0 ] && ROOT_FLAG=(--allow-root)
# A fresh random token for this run: without one any local process could start a kernel. JupyterLab
# and drive.py read it from the environment, not the command line, where `ps` shows it to every user.
TOKEN="$("$PY" -c 'import secrets; print(secrets.token_hex(16))')"
export JUPYTER_TOKEN="$TOKEN"
say "starting JupyterLab on http://127.0.0.1:$PORT with a random token (root folder $ROOT, log $WORK/jupyter.log)"
"$JUPYTER" lab --no-browser "${ROOT_FLAG[@]}" --ip=127.0.0.1 --port="$PORT" --ServerApp.port_retries=0 \
    --ServerApp.root_dir="$ROOT" \
    --LabApp.expose_app_in_browser=True --FileCheckpoints.checkpoint_dir="$WORK/checkpoints" \
    > "$WORK/jupyter.log" 2>&1 &
JUPYTER_PID=$!

for i in $(seq 1 120); do
    if ! kill -0 "$JUPYTER_PID" 2>/dev/null; then
        say "JupyterLab exited before answering on port $PORT (see its log below)."
        exit 1
    fi
    if "$PY" -c "import os, urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:$PORT/api/status',
            headers={'Authorization': 'token ' + os.environ['JUPYTER_TOKEN']}), timeout=2)" 2>/dev/null; then
        break
    fi
    if [ "$i" = 120 ]; then say "JupyterLab did not answer on /api within 60 s."; exit 1; fi
    sleep 0.5
done

# In the background and waited for, so that Ctrl-C or a TERM reaches the trap at once.
timeout --kill-after=15 "$((BUDGET_S + 60))" \
    "$PY" "$REPO/tools/browser/drive.py" --url "http://127.0.0.1:$PORT" --root "$ROOT" \
    --out "$OUT_DIR" --budget "$BUDGET_S" --chromium "$CHROMIUM" "$@" &
DRIVE_PID=$!
set +e
wait "$DRIVE_PID"
status=$?
set -e
DRIVE_PID=""
case "$status" in
    0) say "passed; screenshots in $OUT_DIR" ;;
    1) SHOW_LOG=0; say "FAILED: see the FAIL lines above, $OUT_DIR/summary.json and the screenshots" ;;
    124|137) say "FAILED: the drive ran past its budget of $BUDGET_S s (+60 s) and was stopped" ;;
    *) say "FAILED: the drive itself broke (exit $status)" ;;
esac
exit "$status"
