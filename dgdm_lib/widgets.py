"""Sliders for the book: thin wiring around pure drawing functions.

A chapter's interactive view is ``slider_view(draw, gamma=float_slider(...), ...)``: ``draw`` is a
pure function of the slider values that returns a matplotlib ``Figure`` (or text), tested without
widgets; this module only connects it to ``ipywidgets`` with ``continuous_update=False`` and an
``Output`` area, and measures how long each redraw takes (the book's budget is 200 ms on a CPU).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from IPython.display import Image, display
from matplotlib.figure import Figure

__all__ = ["check_redraw", "dropdown", "float_slider", "int_slider", "redraw_ms", "render", "slider_view"]

#: The redraw budget a slider must meet on a CPU, in milliseconds.
REDRAW_BUDGET_MS = 200.0

_LAYOUT = {"width": "420px"}
_STYLE = {"description_width": "110px"}


def float_slider(description: str, value: float, min: float, max: float, step: float, fmt: str = ".2f") -> widgets.FloatSlider:
    """A float slider that reports its value only on release (``continuous_update=False``)."""
    return widgets.FloatSlider(value=value, min=min, max=max, step=step, description=description,
                               readout_format=fmt, continuous_update=False, layout=_LAYOUT, style=_STYLE)


def int_slider(description: str, value: int, min: int, max: int, step: int = 1) -> widgets.IntSlider:
    """An integer slider that reports its value only on release."""
    return widgets.IntSlider(value=value, min=min, max=max, step=step, description=description,
                             continuous_update=False, layout=_LAYOUT, style=_STYLE)


def dropdown(description: str, options: Any, value: Any = None) -> widgets.Dropdown:
    """A drop-down list (options: a list, or a dict label -> value)."""
    dd = widgets.Dropdown(options=options, description=description, layout=_LAYOUT, style=_STYLE)
    if value is not None:
        dd.value = value
    return dd


def render(result: Figure | str) -> bytes:
    """What the browser receives for ``result`` from ``slider_view``: PNG bytes of a figure, or text.

    The figure is drawn once at its own size and dpi. The inline backend's ``bbox_inches="tight"``
    would draw it twice (once to measure, once to paint), and zlib's default level spends
    more time packing than the browser saves unpacking on a local connection; the views lay
    themselves out inside their canvas, so neither is needed.
    """
    if isinstance(result, Figure):
        buffer = io.BytesIO()
        result.savefig(buffer, format="png", dpi=result.dpi, pil_kwargs={"compress_level": 1})
        return buffer.getvalue()
    return str(result).encode()


def redraw_ms(draw: Callable[..., Figure | str], repeats: int = 3, **values: Any) -> float:
    """Median wall time in ms of ``draw(**values)`` plus rendering it to PNG: what one slider move costs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        render(draw(**values))
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]


def machine_is_busy() -> bool:
    """True when the 1-minute load average exceeds the number of cores: timings then measure the
    other jobs as much as this code."""
    import os

    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1)
    except (OSError, AttributeError):  # no load average on this system (Windows)
        return False


def check_redraw(
    draw: Callable[..., Figure | str], budget_ms: float = REDRAW_BUDGET_MS, attempts: int = 3, **values: Any
) -> float:
    """Measure one slider redraw (``redraw_ms``) and print it beside ``budget_ms``; never fails.

    A measurement over budget is repeated, up to ``attempts`` in all, a second apart, and the best
    one is returned: on a shared machine a few seconds of contention can slow everything by half.
    Every measurement is printed. Speed is a benchmark's business (``make bench``, "Book cost"),
    not an assertion on a reader's laptop, which may be busy with other work.
    """
    times = [redraw_ms(draw, **values)]
    while times[-1] >= budget_ms and len(times) < attempts:
        time.sleep(1.0)
        times.append(redraw_ms(draw, **values))
    ms = min(times)
    shown = ", then ".join(f"{t:.0f} ms" for t in times)
    verdict = "within" if ms < budget_ms else "over"
    busy = "; machine busy: load above core count" if machine_is_busy() else ""
    print(f"redraw: {shown} ({verdict} the {budget_ms:.0f} ms aim{busy})")
    return ms


def _show(result: Figure | str) -> None:
    """Show ``result`` exactly as ``render`` makes it, so ``redraw_ms`` times what the reader waits for."""
    if isinstance(result, Figure):
        display(Image(data=render(result), format="png"))
    else:
        print(result)


def slider_view(draw: Callable[..., Figure | str], **controls: widgets.ValueWidget) -> widgets.VBox:
    """Controls above an ``Output`` that shows ``draw(**values)`` and is redrawn on every change.

    The returned box has ``.output`` (the Output widget) and ``.last_ms`` (the last redraw time),
    so a notebook can check the budget. Errors inside ``draw`` are shown in the output, not lost.
    """
    output = widgets.Output()
    box = widgets.VBox([*controls.values(), output])
    box.output = output
    box.last_ms = float("nan")

    def update(_change: Any = None) -> None:
        start = time.perf_counter()
        with output:
            output.clear_output(wait=True)
            _show(draw(**{name: control.value for name, control in controls.items()}))
        box.last_ms = (time.perf_counter() - start) * 1000

    for control in controls.values():
        control.observe(update, names="value")
    update()
    return box
