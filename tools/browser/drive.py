"""Move every slider of the book in a real browser: JupyterLab driven through Chromium by Playwright.

Why
---
A notebook whose widget code passes nbval can still show nothing to a reader: the widget manager
is missing from JupyterLab, a callback raises and JupyterLab files the traceback in its log
console, or the figure goes to a non-interactive matplotlib backend. nbval never renders a widget,
so only a browser can see these.

Run it
------
``make test-browser`` (which runs ``bash tools/browser/run.sh``). The script

1. checks for Debian's Chromium at ``/usr/bin/chromium``; as root it installs it with
   ``apt-get install chromium`` when missing, otherwise it says what to run and stops. It never
   downloads a browser (no ``playwright install``);
2. starts JupyterLab on 127.0.0.1 at a free port, with a random token (``JUPYTER_TOKEN`` in the
   environment of JupyterLab and of this file, never an empty token), with its configuration, runtime,
   data and checkpoint folders in a temporary folder (your own settings play no part, nothing is
   written next to the notebooks), autosave off (the committed notebooks stay output-free),
   ``DGDM_QUICK=1`` and the reader's inline matplotlib backend; it stops JupyterLab and its
   kernels on exit, whatever happened;
3. runs this file, which opens every ``notebooks/NN_*.ipynb`` whose code mentions ``widgets``,
   ``interact`` or ``slider`` (any case: ``float_slider``, ``slider_view``), one after another
   in one headless browser. For each notebook it

   * runs all cells (the ``notebook:run-all-cells`` command) and waits for the last one;
   * fails on an error output (a traceback, an ``...Error:`` line, "Error displaying widget"),
     on a figure that reached the page as ``<Figure size ...>`` text, on cells that Run All
     never reached, and on an ``error`` message from the kernel that JupyterLab would not show
     in the notebook (a widget callback that raises outside an ``Output``);
   * finds every slider and dropdown that rendered (none, while the code has sliders, means the
     widget manager is missing);
   * moves each slider with the keyboard (focus the handle, three arrow presses; a mouse drag
     when the keys do nothing) and picks another dropdown entry, and requires the output of that
     cell (an image's bytes or the text) to change, and no error to appear.

Arguments to ``run.sh`` are passed here: ``bash tools/browser/run.sh notebooks/03_adl.ipynb``
checks one notebook. Environment: ``DGDM_BROWSER_BUDGET_S`` (default 270 s for the whole drive),
``DGDM_BROWSER_ROOT`` (the folder JupyterLab serves, default the repository; notebooks are looked
for in its ``notebooks/``), ``DGDM_CHROMIUM``, ``DGDM_SCREENSHOTS``, and
``DGDM_BROWSER_KEEP_MPLBACKEND=1`` (keep an inherited ``MPLBACKEND``, as ``make`` exports it).
Exit status: 0 passed, 1 a notebook failed (the ``FAIL`` lines say which and why), 2 something
to install is missing (or no ``JUPYTER_TOKEN``), 3 a defect of this harness, 124 the whole drive
ran out of time.

What it writes
--------------
``build/screenshots/NN_name.png`` (the JupyterLab window scrolled to the first slider, after every
control was moved), ``build/screenshots/NN_name/cell_K.png`` (each cell that holds controls) and
``build/screenshots/summary.json``: per notebook the sliders and dropdowns found, how many changed
their output, the errors, and the seconds taken. A failure names the notebook, the cell and the
control's label, e.g. ``03_sagd.ipynb: cell 14 slider "delta_h" moved 0.8 -> 0.85 but the cell's
output did not change within 30 s``. Look at the screenshots: the test asserts that outputs
change, you judge whether they show the right thing.

Troubleshooting
---------------
* "expected a Chromium browser at /usr/bin/chromium": ``sudo apt-get install -y chromium``.
* Sliders found 0: JupyterLab has no widget manager; ``.venv/bin/pip install -e '.[book]'``
  (``jupyterlab_widgets`` comes with ipywidgets) and check ``.venv/bin/jupyter labextension list``.
* A kernel error "from a widget callback": the traceback is in summary.json; run the notebook in
  ``make lab`` and open View > Show Log Console to see it there.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, Playwright, WebSocket, sync_playwright
from playwright.sync_api import Error as PlaywrightError

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SLIDER_CODE = re.compile(r"widgets|interact|slider", re.IGNORECASE)  # also the book's float_slider, slider_view
ERROR_TEXT = (r"Traceback|\b\w+(Error|Exception)\b:|Error displaying widget|Error creating widget|[Mm]odel not found"
              r"|<Figure size \d+x\d+ with \d+ Axes>|FigureCanvasAgg is non-interactive")
FIGURE_AS_TEXT = ("a matplotlib figure reached the page as text, not as an image: the kernel's backend is not "
                  "inline (is MPLBACKEND=Agg set in its environment? unset it or run %matplotlib inline)")
VIEWPORT = {"width": 1400, "height": 1600}
CHANGE_TIMEOUT_S = 30.0

# --- JavaScript run in the page (JupyterLab exposes itself as window.jupyterapp) -----------------

NOTEBOOK_READY_JS = """() => {
  const dialog = document.querySelector('.jp-Dialog');
  if (dialog) return 'dialog: ' + dialog.textContent.trim().replace(/\\s+/g, ' ').slice(0, 200);
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  if (!panel || !panel.sessionContext || !panel.content) return false;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle' && panel.context.isReady;
}"""

START_RUN_ALL_JS = """() => {
  window.__dgdm_run_all = null;
  window.jupyterapp.shell.collapseLeft();
  window.jupyterapp.commands.execute('notebook:run-all-cells').then(
    (ok) => { window.__dgdm_run_all = {ok: ok !== false}; },
    (err) => { window.__dgdm_run_all = {ok: false, error: String(err)}; });
}"""

IDLE_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const running = [...panel.content.node.querySelectorAll('.jp-InputPrompt')]
    .some((p) => p.textContent.includes('*'));
  return !!kernel && kernel.status === 'idle' && !running;
}"""

# Tags every control with data-dgdm-control and every cell with data-dgdm-cell, and lists them.
FIND_CONTROLS_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = [...panel.content.node.querySelectorAll('.jp-Cell')];
  const found = [];
  cells.forEach((cell, i) => {
    cell.setAttribute('data-dgdm-cell', String(i + 1));
    const line = cell.querySelector('.jp-InputArea-editor .cm-line');
    const source = line ? line.textContent.trim().slice(0, 60) : '';
    const promptNode = cell.querySelector('.jp-InputPrompt');
    const prompt = promptNode ? promptNode.textContent.trim().replace(/:$/, '') : '';
    const controls = cell.querySelectorAll(
      '.jp-Cell-outputWrapper .widget-slider, .jp-Cell-outputWrapper .widget-dropdown');
    controls.forEach((el, j) => {
      const id = `c${i + 1}-${j + 1}`;
      el.setAttribute('data-dgdm-control', id);
      const label = el.querySelector('.widget-label');
      found.push({id, cell: i + 1, kind: el.classList.contains('widget-dropdown') ? 'dropdown' : 'slider',
                  label: label ? label.textContent.trim() : '', source, prompt});
    });
  });
  return found;
}"""

# A fingerprint of what a reader sees in the outputs of one cell (or all cells when cell is null),
# leaving out the controls themselves, whose readouts change by construction.
SIGNATURE_JS = """(cell) => {
  const panel = window.jupyterapp.shell.currentWidget;
  const scope = cell === null ? '.jp-Cell' : `.jp-Cell[data-dgdm-cell="${cell}"]`;
  let text = '';
  let images = 0;
  panel.content.node.querySelectorAll(`${scope} .jp-Cell-outputWrapper`).forEach((wrapper) => {
    const copy = wrapper.cloneNode(true);
    copy.querySelectorAll('.widget-slider, .widget-dropdown, .widget-readout, .widget-button')
      .forEach((el) => el.remove());
    copy.querySelectorAll('img').forEach((img) => { text += '|img:' + img.getAttribute('src'); images += 1; });
    text += '|text:' + copy.textContent;
  });
  let hash = 2166136261;
  for (let i = 0; i < text.length; i++) { hash = Math.imul(hash ^ text.charCodeAt(i), 16777619) >>> 0; }
  return `${images} img, ${text.length} chars, fnv ${hash.toString(16)}`;
}"""

ERRORS_JS = """(pattern) => {
  const regex = new RegExp(pattern);
  const panel = window.jupyterapp.shell.currentWidget;
  const errors = [];
  panel.content.node.querySelectorAll('.jp-Cell').forEach((cell, i) => {
    cell.querySelectorAll('.jp-OutputArea-output').forEach((out) => {
      if (out.querySelector('.jp-OutputArea-output')) return;  // report the innermost output only
      const text = out.textContent || '';
      if (!regex.test(text)) return;
      const printed = [...cell.querySelectorAll('.jp-OutputArea-output')]
        .filter((o) => o !== out && !o.querySelector('.jp-OutputArea-output') && !regex.test(o.textContent || ''))
        .map((o) => (o.textContent || '').trim()).join(' ').slice(-300);
      errors.push({cell: i + 1, text: text.trim().slice(0, 600), printed});
    });
  });
  return errors;
}"""

# Code cells Run All Cells left unexecuted (prompt "[ ]"): it stops at the first error.
NOT_RUN_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const notRun = [];
  panel.content.node.querySelectorAll('.jp-Cell').forEach((cell, i) => {
    const prompt = cell.querySelector('.jp-InputPrompt');
    const source = cell.querySelector('.cm-content');
    const empty = !source || source.textContent.trim() === '';
    if (cell.classList.contains('jp-CodeCell') && !empty && prompt && /^\\[ ?\\]/.test(prompt.textContent.trim())) {
      notRun.push(i + 1);
    }
  });
  return notRun;
}"""

SHUTDOWN_JS = """async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (panel && panel.sessionContext) { await panel.sessionContext.shutdown(); }
}"""


@dataclass
class ControlResult:
    """What happened when one slider or dropdown was moved."""

    notebook: str
    cell: int
    kind: str
    label: str
    source: str
    prompt: str = ""
    before: str = ""
    after: str = ""
    how: str = ""
    changed: bool = False
    seconds: float = 0.0
    problem: str = ""

    def name(self) -> str:
        return (f'cell {self.cell} {self.prompt} {self.kind} "{self.label or "(no label)"}" '
                f"(cell starts: {self.source!r})")


@dataclass
class NotebookReport:
    """The summary.json entry of one notebook."""

    notebook: str
    sliders_found: int = 0
    sliders_changed: int = 0
    dropdowns_found: int = 0
    dropdowns_changed: int = 0
    errors: list[str] = field(default_factory=list)
    controls: list[dict[str, Any]] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    screenshot: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors


class KernelErrorLog:
    """Collects the errors the kernel sends over the page's websockets.

    A widget callback that raises outside an ``Output`` produces an ``error`` message (or a
    traceback on stderr) and nothing in the notebook itself: JupyterLab files it in its log console.
    Errors of cells run by Run All Cells are left to the check of the notebook's outputs.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.unreported: list[str] = []

    def attach(self, page: Page) -> None:
        page.on("websocket", self._watch)

    def _watch(self, socket: WebSocket) -> None:
        if "/api/kernels/" in socket.url:
            socket.on("framereceived", self._on_frame)

    def _on_frame(self, payload: str | bytes) -> None:
        message = decode_kernel_frame(payload)
        if not message:
            return
        header, parent, content = message
        origin = parent.get("msg_type", "")
        if origin == "execute_request":
            return
        where = "from a widget callback" if origin == "comm_msg" else f"in reply to {origin or 'no request'}"
        if header.get("msg_type") == "error":
            frames = [strip_ansi(frame) for frame in content.get("traceback", [])[-2:]]
            self._add(f"kernel error {where}: {content.get('ename')}: {content.get('evalue')}\n" + "\n".join(frames))
        elif header.get("msg_type") == "stream" and content.get("name") == "stderr":
            text = strip_ansi(content.get("text", ""))
            if "Traceback" in text:
                self._add(f"traceback on stderr {where}:\n{text[-1500:]}")

    def _add(self, error: str) -> None:
        self.errors.append(error)
        self.unreported.append(error)

    def take(self) -> list[str]:
        """The errors not yet handed out, once each."""
        taken, self.unreported = self.unreported, []
        return taken


def decode_kernel_frame(payload: str | bytes) -> tuple[dict, dict, dict] | None:
    """(header, parent_header, content) of a kernel websocket frame, JSON or binary v1 protocol."""
    try:
        if isinstance(payload, str):
            msg = json.loads(payload)
            return msg.get("header", {}), msg.get("parent_header", {}), msg.get("content", {})
        count = int.from_bytes(payload[:8], "little")
        offsets = [int.from_bytes(payload[8 * (i + 1): 8 * (i + 2)], "little") for i in range(count)]
        parts = [payload[offsets[i]: offsets[i + 1]] for i in range(1, min(count - 1, 5))]
        header, parent, _metadata, content = (json.loads(part) for part in parts[:4])
        return header, parent, content
    except (ValueError, IndexError, TypeError):
        return None


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def has_sliders(notebook: Path) -> bool:
    """True when a code cell of the ``.ipynb`` mentions ``widgets``, ``interact`` or ``slider`` (any case)."""
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    for cell in cells:
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        if cell.get("cell_type") == "code" and SLIDER_CODE.search(source):
            return True
    return False


def find_notebooks(root: Path, requested: list[str]) -> list[Path]:
    """The notebooks named on the command line, or every ``notebooks/NN_*.ipynb`` with sliders."""
    if requested:
        paths = [(Path(p) if Path(p).is_absolute() else root / p).resolve() for p in requested]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise SystemExit(f"[test-browser] expected notebooks, found no file at: {', '.join(missing)}")
        outside = [str(p) for p in paths if root not in p.parents]
        if outside:
            raise SystemExit(f"[test-browser] notebooks must lie under the served folder {root}: {', '.join(outside)}")
        return paths
    return [p for p in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")) if has_sliders(p)]


def launch(playwright: Playwright, chromium: str) -> Browser:
    return playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)


class DriveError(Exception):
    """A notebook could not be driven to the end; the message says where it stopped."""


def wait_until(page: Page, script: str, timeout_s: float, what: str, arg: Any = None) -> Any:
    """Poll ``script`` in the page until it is truthy and return its value; raise DriveError naming ``what``."""
    try:
        handle = page.wait_for_function(script, arg=arg, timeout=max(timeout_s, 1.0) * 1000, polling=250)
    except Exception as exc:  # playwright's TimeoutError, or the page went away
        raise DriveError(f"{what} did not happen within {timeout_s:.0f} s ({type(exc).__name__})") from exc
    return handle.json_value()


def notebook_url(base_url: str, relpath: str, token: str) -> str:
    """The notebook in a workspace of its own, reset, logged in with the server's ``token``."""
    workspace = re.sub(r"[^A-Za-z0-9]", "-", relpath)
    return f"{base_url}/lab/workspaces/dgdm-{workspace}/tree/{relpath}?reset&token={token}"


def open_notebook(page: Page, base_url: str, relpath: str, timeout_s: float) -> None:
    page.goto(notebook_url(base_url, relpath, os.environ["JUPYTER_TOKEN"]), wait_until="domcontentloaded")
    state = wait_until(page, NOTEBOOK_READY_JS, timeout_s, "the notebook opening with an idle kernel")
    if isinstance(state, str):
        raise DriveError(f"JupyterLab opened a dialog instead of the notebook's kernel ({state}); "
                         "does the notebook name its kernel (metadata.kernelspec python3)?")


def run_all_cells(page: Page, timeout_s: float) -> None:
    page.evaluate(START_RUN_ALL_JS)
    wait_until(page, "() => window.__dgdm_run_all !== null", timeout_s, "Run All Cells finishing")
    wait_until(page, IDLE_JS, 30, "the kernel going idle after Run All Cells")
    page.wait_for_timeout(500)  # let the last outputs and widget views render


def slider_value(page: Page, control_id: str) -> str:
    control = page.locator(f'[data-dgdm-control="{control_id}"]')
    handle = control.locator(".noUi-handle").first
    value = handle.get_attribute("aria-valuenow") if handle.count() else None
    readout = control.locator(".widget-readout")
    text = readout.first.text_content() if readout.count() else ""
    return f"{text or value}".strip()


def move_slider(page: Page, control_id: str) -> tuple[str, str, str]:
    """Move a slider by keyboard (a drag if keys do nothing); return (before, after, how)."""
    control = page.locator(f'[data-dgdm-control="{control_id}"]')
    handle = control.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    before = slider_value(page, control_id)
    for key in ("ArrowRight", "ArrowLeft"):
        handle.focus()
        for _ in range(3):
            page.keyboard.press(key)
        after = slider_value(page, control_id)
        if after != before:
            return before, after, f"keyboard {key} x3"
    box = handle.bounding_box()
    if box:
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        for dx in (60, -60):
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x + dx, y, steps=6)
            page.mouse.up()
            after = slider_value(page, control_id)
            if after != before:
                return before, after, f"mouse drag {dx:+d} px"
    return before, before, "neither arrow keys nor a drag moved the handle"


def move_dropdown(page: Page, control_id: str) -> tuple[str, str, str]:
    select = page.locator(f'[data-dgdm-control="{control_id}"] select').first
    select.scroll_into_view_if_needed()
    options = select.locator("option").all_text_contents()
    before = select.locator("option:checked").first.text_content() or ""
    others = [o for o in options if o != before]
    if not others:
        return before, before, "the dropdown has a single option"
    index = (options.index(before) + 1) % len(options) if before in options else 0
    choice = options[index] if options[index] != before else others[0]
    select.select_option(label=choice)
    return before, choice, "select another option"


def signature(page: Page, cell: int | None) -> str:
    return page.evaluate(SIGNATURE_JS, cell)


def try_control(page: Page, notebook: str, control: dict[str, Any], kernel_log: KernelErrorLog) -> ControlResult:
    """Move one control and wait for its cell's (or failing that, any cell's) output to change."""
    result = ControlResult(notebook, control["cell"], control["kind"], control["label"], control["source"],
                           control["prompt"])
    start = time.perf_counter()
    cell_before, all_before = signature(page, control["cell"]), signature(page, None)
    kernel_log.take()
    mover = move_dropdown if control["kind"] == "dropdown" else move_slider
    result.before, result.after, result.how = mover(page, control["id"])
    if result.before == result.after:
        result.problem = f"could not move it: {result.how}"
        return result
    deadline = time.perf_counter() + CHANGE_TIMEOUT_S
    while time.perf_counter() < deadline and not result.changed and not kernel_log.unreported:
        page.wait_for_timeout(200)
        if signature(page, control["cell"]) != cell_before:
            result.changed = True
        elif signature(page, None) != all_before:
            result.changed, result.how = True, result.how + " (output changed in another cell)"
    wait_until(page, IDLE_JS, CHANGE_TIMEOUT_S, "the kernel going idle after moving a control")
    page.wait_for_timeout(300)
    if result.changed and signature(page, None) == all_before:
        result.changed = False  # it flickered (e.g. cleared) and came back to what it was
    problems = []
    if not result.changed:
        waited = "" if kernel_log.unreported else f" within {CHANGE_TIMEOUT_S:.0f} s"
        problems.append(f"moved {result.before} -> {result.after} ({result.how}) but the cell's output "
                        f"did not change{waited}")
    problems += [f"the kernel reported {error}" for error in dict.fromkeys(kernel_log.take())]
    result.problem = "; ".join(problems)
    result.seconds = round(time.perf_counter() - start, 2)
    return result


def take_screenshots(page: Page, report: NotebookReport, controls: list[dict[str, Any]], out_dir: Path) -> None:
    stem = Path(report.notebook).stem
    cells = sorted({c["cell"] for c in controls})
    cell_dir = out_dir / stem
    for cell in cells:
        cell_dir.mkdir(parents=True, exist_ok=True)
        page.locator(f'.jp-Cell[data-dgdm-cell="{cell}"]').screenshot(path=str(cell_dir / f"cell_{cell}.png"))
    if cells:
        page.evaluate("(c) => document.querySelector(`.jp-Cell[data-dgdm-cell=\"${c}\"]`)"
                      ".scrollIntoView({block: 'start'})", cells[0])
        page.wait_for_timeout(300)
    path = out_dir / f"{stem}.png"
    page.screenshot(path=str(path), full_page=True)
    report.screenshot = str(path)


def check_notebook(browser: Browser, base_url: str, root: Path, notebook: Path, out_dir: Path,
                   deadline: float) -> NotebookReport:
    """Open, run and exercise one notebook; every problem found lands in ``report.errors``."""
    relpath = notebook.relative_to(root).as_posix()
    report = NotebookReport(notebook=relpath)
    start = time.perf_counter()
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    kernel_log = KernelErrorLog()
    kernel_log.attach(page)
    page.on("pageerror", lambda exc: report.console_errors.append(f"uncaught: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and report.console_errors.append(msg.text[:300]))
    try:
        open_notebook(page, base_url, relpath, min(120, deadline - time.perf_counter()))
        run_all_cells(page, deadline - time.perf_counter())
        exercise(page, report, kernel_log, out_dir, deadline)
    except DriveError as exc:
        report.errors.append(f"{relpath}: {exc}")
    except PlaywrightError as exc:
        report.errors.append(f"{relpath}: a browser step failed: {str(exc).splitlines()[0]}")
    finally:
        report.errors.extend(f"{relpath}: {error}" for error in dict.fromkeys(kernel_log.take()))
        report.errors.extend(f"{relpath}: the page raised {e}" for e in report.console_errors
                             if e.startswith("uncaught") and "widget" in e.lower())
        if not report.screenshot:
            try:
                page.screenshot(path=str(out_dir / f"{notebook.stem}.png"), full_page=True)
                report.screenshot = str(out_dir / f"{notebook.stem}.png")
            except PlaywrightError as exc:  # the page may be gone; the report already says why
                report.console_errors.append(f"no screenshot: {str(exc).splitlines()[0]}")
        with contextlib.suppress(PlaywrightError):  # the server's shutdown stops the kernel at the end anyway
            page.evaluate(SHUTDOWN_JS)
        context.close()
        report.seconds = round(time.perf_counter() - start, 1)
    return report


def exercise(page: Page, report: NotebookReport, kernel_log: KernelErrorLog, out_dir: Path,
             deadline: float) -> None:
    """After Run All: check for errors, move every control, check again, take the screenshots."""
    nb = report.notebook
    for err in page.evaluate(ERRORS_JS, ERROR_TEXT):
        printed = f" (the cell printed: {err['printed']})" if err["printed"] else ""
        report.errors.append(f"{nb}: cell {err['cell']} shows an error after Run All Cells{printed}:\n"
                             f"{explain(err['text'])}")
    controls = page.evaluate(FIND_CONTROLS_JS)
    report.sliders_found = sum(c["kind"] == "slider" for c in controls)
    report.dropdowns_found = sum(c["kind"] == "dropdown" for c in controls)
    not_run = page.evaluate(NOT_RUN_JS)
    if not_run:
        report.errors.append(f"{nb}: Run All Cells stopped early; cells {', '.join(map(str, not_run))} never ran")
    if not controls and not not_run:
        report.errors.append(f"{nb}: its code uses widgets but no slider or dropdown rendered "
                             "(is the JupyterLab widget manager, jupyterlab_widgets, installed?)")
    seen_errors = {e["text"] for e in page.evaluate(ERRORS_JS, ERROR_TEXT)}
    for control in controls:
        if time.perf_counter() > deadline:
            report.errors.append(f"{nb}: time budget spent before {control['kind']} in cell {control['cell']}")
            break
        result = try_control(page, nb, control, kernel_log)
        report.controls.append(asdict(result))
        if result.changed and control["kind"] == "slider":
            report.sliders_changed += 1
        if result.changed and control["kind"] == "dropdown":
            report.dropdowns_changed += 1
        if result.problem:
            report.errors.append(f"{nb}: {result.name()}: {result.problem}")
        for err in page.evaluate(ERRORS_JS, ERROR_TEXT):
            if err["text"] not in seen_errors:
                seen_errors.add(err["text"])
                report.errors.append(f"{nb}: after moving {result.name()}, cell {err['cell']} shows an error:\n"
                                     f"{explain(err['text'])}")
    take_screenshots(page, report, controls, out_dir)


def explain(text: str) -> str:
    """The error text of an output, with the cause spelled out where the text alone misleads."""
    if text.startswith("<Figure size") or "FigureCanvasAgg is non-interactive" in text:
        return f"{FIGURE_AS_TEXT}: {text[:200]}"
    return text


def clear_previous_run(out_dir: Path) -> None:
    """Remove the screenshots and summary of an earlier run, so none can be mistaken for this one's."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in [*out_dir.glob("*.png"), *out_dir.glob("*/cell_*.png"), out_dir / "summary.json"]:
        old.unlink(missing_ok=True)


def has_outputs(notebook: Path) -> bool:
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    return any(cell.get("outputs") for cell in cells)


def check_unchanged(notebooks: list[Path], hashes: dict[str, str], reports: list[NotebookReport]) -> None:
    """Fail when JupyterLab wrote outputs into a committed notebook; only warn about someone else's edit."""
    now = digest(notebooks)
    for notebook, report in zip(notebooks, reports, strict=False):
        if now[str(notebook)] == hashes[str(notebook)]:
            continue
        if has_outputs(notebook):
            report.errors.append(f"{report.notebook}: was saved with outputs during the run, but the book commits "
                                 "notebooks without outputs: clear them (git diff shows them) before committing")
        else:
            print(f"[test-browser] note: {report.notebook} was edited on disk during the run (no outputs in it): "
                  "the browser ran the version it opened")


def digest(paths: list[Path]) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def print_summary(reports: list[NotebookReport], total_s: float) -> None:
    print(f"{'notebook':40s} {'sliders':>12s} {'dropdowns':>12s} {'errors':>7s} {'seconds':>8s}")
    for r in reports:
        print(f"{r.notebook:40s} {f'{r.sliders_changed}/{r.sliders_found} moved':>12s} "
              f"{f'{r.dropdowns_changed}/{r.dropdowns_found}':>12s} {len(r.errors):7d} {r.seconds:8.1f}")
    print(f"total {total_s:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="JupyterLab base URL, e.g. http://127.0.0.1:8899")
    parser.add_argument("--root", type=Path, required=True, help="the folder JupyterLab serves")
    parser.add_argument("--out", type=Path, default=Path("build/screenshots"), help="screenshots and summary.json")
    parser.add_argument("--budget", type=float, default=270.0, help="seconds for all notebooks together")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium binary (never downloaded)")
    parser.add_argument("notebooks", nargs="*", help="notebooks to check (default: every slider notebook)")
    args = parser.parse_args(argv)
    if not os.environ.get("JUPYTER_TOKEN"):
        print("[test-browser] expected the JupyterLab server's token in JUPYTER_TOKEN, found none: start it "
              "through tools/browser/run.sh, which makes one.", file=sys.stderr)
        return 2

    root = args.root.resolve()
    notebooks = find_notebooks(root, args.notebooks)
    if not notebooks:
        print(f"[test-browser] expected notebooks with sliders in {root / 'notebooks'} (NN_name.ipynb whose code "
              "mentions widgets, interact or slider), found none: nothing was tested.", file=sys.stderr)
        return 1
    clear_previous_run(args.out)
    print(f"[test-browser] {len(notebooks)} notebook(s) with sliders: {', '.join(p.name for p in notebooks)}",
          flush=True)
    hashes = digest(notebooks)
    start = time.perf_counter()
    deadline = start + args.budget
    reports: list[NotebookReport] = []
    with sync_playwright() as playwright:
        browser = launch(playwright, args.chromium)
        try:
            for notebook in notebooks:
                if time.perf_counter() > deadline:
                    spent = (f"{notebook.name}: not run, the time budget of {args.budget:.0f} s was spent "
                             "(raise DGDM_BROWSER_BUDGET_S, or make the notebook quicker in quick mode)")
                    reports.append(NotebookReport(notebook.relative_to(root).as_posix(), errors=[spent]))
                    continue
                print(f"[test-browser] {notebook.name}: run all cells, move every control ...", flush=True)
                reports.append(check_notebook(browser, args.url, root, notebook, args.out, deadline))
                print(f"[test-browser] {notebook.name}: {'ok' if reports[-1].ok else 'FAILED'} "
                      f"in {reports[-1].seconds:.1f} s", flush=True)
        finally:
            browser.close()
    check_unchanged(notebooks, hashes, reports)
    total = time.perf_counter() - start
    summary = {"ok": all(r.ok for r in reports), "seconds": round(total, 1),
               "notebooks": [asdict(r) | {"ok": r.ok} for r in reports]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print_summary(reports, total)
    failures = [e for r in reports for e in r.errors]
    for failure in failures:
        print(f"FAIL {failure}")
    print(f"[test-browser] screenshots and summary.json in {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001  a defect of the harness itself, told apart from a failing notebook (exit 1)
        import traceback

        traceback.print_exc()
        sys.exit(3)
