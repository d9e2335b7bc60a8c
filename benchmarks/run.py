"""The book's benchmarks: ``make bench`` = ``python benchmarks/run.py``.

Writes ``docs/results.md`` (tables, figures under ``docs/figures/``, machine, versions, seeds, the
command) and ``docs/results.json`` (every number of the page, machine-readable), from one run.

Sections (``--only accuracy,cost,book,photos``; default all four):

* **accuracy**: beetles, the small CPU network, classroom schedule, seeds 0, 1, 2. Methods CAM,
  ADL, SAGD stage 1, stage 1+2, DGDM (+CAGD) and the random-block control; SAGD block sizes 1, 2,
  3 and adaptive; DGDM beta 2, 2.5, 3, 3.5; pattern contrast 0.06 / 0.09 / 0.12 for CAM, ADL,
  SAGD and DGDM. Tau is chosen on val and every number is on test (``experiments.measure``).
  Rows that are the same configuration share runs (adaptive = block 3 on 16x16 maps, beta 3 =
  DGDM, contrast 0.09 = the methods table): 57 distinct runs, about 45 s each on 2 idle cores
  (the AVX2 EPYC machine the book is tested on).
* **cost**: forward+backward step time of each module alone and of small / VGG16-GAP / ResNet50
  with and without ADL and DGDM, interleaved repetitions, ratio to the plain backbone; CPU always,
  CUDA with and without AMP when a GPU is present.
* **book**: each notebook's time in quick and classroom mode, and the dataset generation time.
  Notebook times are read from ``build/book_times.json`` (``make book``) or from an earlier
  benchmark's ``build/bench_book/<mode>/book_times.json`` when present, else the notebooks are
  executed now (``--book-source auto``, the default); the page names the source of each number.
* **photos**: real photographs (``benchmarks/photos.py``). The ImageNet-pretrained EfficientNet-Lite0's
  CAMs on the ILSVRC val images of ``DGDM_IMAGENET_ROOT`` (no training), then CAM, ADL, SAGD 1+2 and
  DGDM fine-tuned on the first ``--photo-classes`` (10) species of ``DGDM_CUB_ROOT`` over ``--seeds``
  (chapter 09's recipe, models cached in the data folder), each method against CAM with intervals and
  verdicts, and the fast fine-tune (frozen through stage3) timed against full backprop, both trained
  now. A part whose images are missing is skipped with what to get; the bench goes on.

From scratch by default. Training runs go to a benchmark data folder (``--data``, default
``build/bench_data``) that is emptied first (``--fresh``, the default), so ``make bench`` trains
every run again and regenerates the dataset. The benchmark always runs in classroom mode, whatever
``DGDM_QUICK`` or ``CI`` say. Useful variants::

    python benchmarks/run.py --resume                 # continue an interrupted run (keeps build/bench_data)
    python benchmarks/run.py --data data --resume --jobs 1   # use (and fill) the notebooks' cache in data/
    python benchmarks/run.py --only cost              # one section; the others stay as they are in results.json
    python benchmarks/run.py --report-only            # re-render results.md from results.json
    python benchmarks/run.py --tiny --out /tmp/bench  # a seconds-long smoke run of the whole pipeline
    DGDM_CUB_ROOT=~/cub DGDM_IMAGENET_ROOT=~/ilsvrc python benchmarks/run.py --only photos  # real photos only

A run's cache key (``BeetleRun.key()``) includes the torch thread count, so runs are shared with the
notebooks only when trained with the notebooks' count: ``--jobs 1`` and no ``--threads``.

Budget (2 cores): the accuracy section trains 57 runs, two at a time with one torch thread each
(``--jobs``/``--threads``). On our 2 idle AVX2 cores (2026-11-29) that took 50.7 min (about 100 s a
run, two at a time); one at a time with two threads (``--jobs 1``) 47 min: over the 30 min we
aimed for. Runs the notebooks already trained are reused with ``--data data --resume --jobs 1``
(18 of the 57 after ``make book`` with ``DGDM_SEED_OFFSET`` 0, 1 and 2). Cost takes about 4.5 min;
book a few seconds when ``make book`` or an earlier benchmark has written its times, else the
notebooks are executed (a few minutes per mode with their models cached).
The benchmark sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is set: on 2 cores shared with other jobs
(load average ~4), a step of the small net took 1.7 s with two spinning OpenMP threads, 150 ms with
two passive ones and 140 ms with one thread.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# Spinning OpenMP threads made training 3-10x slower on cores shared with other jobs; the policy is
# read when torch loads OpenMP, so it is set before anything imports torch (workers and notebook
# kernels inherit it). Set the variable yourself to opt out.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SECTIONS = ("accuracy", "cost", "book", "photos")
GROUPS = ("methods", "block_size", "beta", "contrast")
MARKER = ".dgdm-bench"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", description="Re-run the benchmarks; write docs/results.md and docs/results.json.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("Useful variants::")[1],
    )
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help="comma-separated sections to run: accuracy, cost, book, photos (default: all)")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds (default 0,1,2)")
    parser.add_argument("--groups", default=",".join(GROUPS),
                        help="accuracy tables to fill: methods, block_size, beta, contrast (default: all)")
    parser.add_argument("--methods", default=None,
                        help="keep only rows of these method keys (cam, adl, sagd, sagd12, dgdm, random_block)")
    parser.add_argument("--data", type=Path, default=ROOT / "build" / "bench_data",
                        help="data folder for datasets, trained models and per-run results (default build/bench_data)")
    parser.add_argument("--fresh", action=argparse.BooleanOptionalAction, default=True,
                        help="empty the data folder first, so everything is regenerated (default: on)")
    parser.add_argument("--resume", dest="fresh", action="store_false",
                        help="keep the data folder's cached runs (same as --no-fresh)")
    parser.add_argument("--out", type=Path, default=None, help="where results.md/.json go (default docs/)")
    parser.add_argument("--build", type=Path, default=ROOT / "build",
                        help="where book_times.json files are looked for and written (default build/)")
    parser.add_argument("--book-source", choices=("auto", "files", "run"), default="auto",
                        help="notebook times: read files and run what is missing (auto), files only, or run all")
    parser.add_argument("--book-modes", default="quick,classroom", help="modes to time the notebooks in")
    parser.add_argument("--device", action="append", default=None,
                        help="cost section devices (default: cpu, plus cuda when available); repeatable")
    parser.add_argument("--jobs", type=int, default=None,
                        help="accuracy runs trained at once, in worker processes (default: 2 when there are 2 or "
                             "more cores, else 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per process (default: cores / jobs for the workers, torch's choice for "
                             "the main process); on a loaded machine 1 is much faster than 2")
    parser.add_argument("--photo-classes", type=int, default=None,
                        help="photos: fine-tune on the first N CUB species (default 10; 2 with --tiny)")
    parser.add_argument("--photo-methods", default=None,
                        help="photos: methods to fine-tune, CAM first as the baseline (default cam,adl,sagd12,dgdm; "
                             "cam,dgdm with --tiny)")
    parser.add_argument("--photo-epochs", type=int, default=None, help="photos: fine-tune epochs (default 6; 1 with --tiny)")
    parser.add_argument("--imagenet-limit", type=int, default=None,
                        help="photos: score the first N ILSVRC val images (default all; 20 with --tiny)")
    parser.add_argument("--report-only", action="store_true", help="only re-render results.md from results.json")
    parser.add_argument("--tiny", action="store_true",
                        help="smoke test: 1 epoch on 192 images, tiny cost cases; photos: 2 species, 1 epoch, the "
                             "first seed, cam and dgdm, 20 ImageNet images; writes to build/bench_tiny by default")
    args = parser.parse_args(argv)
    cores = _usable_cores()
    args.jobs = args.jobs if args.jobs is not None else min(2, cores)
    args.worker_threads = args.threads or max(1, cores // max(args.jobs, 1))
    args.only = _split(args.only, SECTIONS, "--only")
    args.groups = _split(args.groups, GROUPS, "--groups")
    args.seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    args.book_modes = _split(args.book_modes, ("quick", "classroom"), "--book-modes")
    if args.methods or args.photo_methods:
        from dgdm_lib.models import METHODS

        if args.methods:
            args.methods = _split(args.methods, tuple(METHODS), "--methods")
        if args.photo_methods:
            args.photo_methods = _split(args.photo_methods, tuple(METHODS), "--photo-methods")
    if args.out is None:
        args.out = ROOT / "build" / "bench_tiny" if args.tiny else ROOT / "docs"
    return args


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _split(text: str, allowed: tuple[str, ...], flag: str) -> tuple[str, ...]:
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in items if s not in allowed]
    if unknown:
        raise SystemExit(f"{flag}: unknown {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return items


def log(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------------------------
# Set-up: classroom mode, a data folder of our own
# --------------------------------------------------------------------------------------------
def prepare_data_dir(path: Path, fresh: bool) -> Path:
    """Point ``DGDM_DATA`` at ``path``; empty it first when ``fresh``. Only a folder the benchmark
    created (it holds a ``.dgdm-bench`` marker) or an empty one is ever emptied."""
    path = path.expanduser().resolve()
    if fresh and path.exists() and any(path.iterdir()):
        if not (path / MARKER).is_file():
            raise SystemExit(
                f"refusing to empty {path}: it holds files the benchmark did not create (no {MARKER} marker). "
                f"Use --resume to reuse its cached runs, or point --data at an empty or benchmark-only folder."
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    if fresh or not any(path.iterdir()):
        (path / MARKER).write_text("created by benchmarks/run.py; emptied by --fresh\n")
    os.environ["DGDM_DATA"] = str(path)
    return path


def force_classroom() -> None:
    """The benchmark measures the classroom schedule, whatever ``DGDM_QUICK`` or ``CI`` say."""
    os.environ["DGDM_QUICK"] = "0"


def tiny_schedule():
    from dgdm_lib.experiments import Schedule

    return Schedule(epochs=1, train_size=192, val_size=32, test_size=32)


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------
def section_accuracy(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    """Train / read every run, then tables, claims, figures. With ``--jobs`` > 1 the main process
    takes the workers' thread count meanwhile: ``BeetleRun.key()`` includes it, so both sides must
    name the same cache entries."""
    import torch

    before = torch.get_num_threads()
    if args.jobs > 1:
        torch.set_num_threads(args.worker_threads)
    try:
        return _accuracy(args, out_dir)
    finally:
        torch.set_num_threads(before)


def _accuracy(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    import torch

    from benchmarks import accuracy, report
    from benchmarks.environment import load_average
    from dgdm_lib.experiments import CLASSROOM

    schedule = tiny_schedule() if args.tiny else CLASSROOM
    plan = accuracy.build_plan(args.seeds, schedule, args.groups)
    if args.methods:
        plan = accuracy.Plan([r for r in plan.rows if r.method in args.methods], plan.seeds, plan.schedule)
    log(f"[accuracy] {len(plan.rows)} rows, {len(plan.runs)} distinct runs, seeds {plan.seeds}, "
        f"{schedule.epochs} epochs on {schedule.train_size} images; ~45 s a run on 2 idle cores "
        f"(~{len(plan.runs) * 45 / 60:.0f} min when none is cached); load average now {load_average()}")
    results = accuracy.run_plan(plan, default_seconds=2.0 if args.tiny else 30.0, log=log, jobs=args.jobs,
                                threads=args.worker_threads)
    out_threads = torch.get_num_threads()
    tables = accuracy.tables(plan, results)
    out: dict[str, Any] = {
        "plan": {"seeds": list(plan.seeds), "schedule": dataclasses.asdict(schedule),
                 "groups": list(args.groups), "rows": [{"group": r.group, "name": r.name, "method": r.method,
                                                         "kwargs": dict(r.kwargs), "note": r.note} for r in plan.rows]},
        "runs": {key: {k: v for k, v in m.items()} for key, m in results.items()},
        "tables": tables,
        "claims": accuracy.claims(tables),
        "figures": {},
    }
    figures = out_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)

    def rel(path: Path) -> str:
        return path.relative_to(out_dir).as_posix()

    if "methods" in tables:
        out["figures"]["methods"] = rel(report.methods_figure(tables["methods"], figures / "bench_methods.png"))
    if "contrast" in tables:
        out["figures"]["contrast"] = rel(report.contrast_figure(tables["contrast"], figures / "bench_contrast.png"))
    seed0 = [r for r in plan.runs if r.seed == plan.seeds[0] and r.pattern_contrast == accuracy.DEFAULT_CONTRAST
             and not r.module_kwargs and r.method in ("cam", "adl", "sagd", "sagd12", "dgdm")]
    if seed0:
        out["figures"]["cams"] = rel(cams_figure(seed0, figures / "bench_cams.png"))
    dgdm0 = next((r for r in seed0 if r.method == "dgdm"), None)
    if dgdm0 is not None:
        out["cagd_activity"] = accuracy.cagd_activity(dgdm0)
    trained = [m["train_seconds"] for m in results.values() if m.get("train_seconds")]
    out["training"] = {
        "torch_threads": out_threads,
        "median_train_s": statistics.median(trained) if trained else None,
        "sum_train_s": sum(trained) if trained else None,
        "trained_now": sum(1 for m in results.values() if m["bench_seconds"] > 0),
        "sum_bench_s": sum(m["bench_seconds"] for m in results.values()),
    }
    return out


def save_small_png(fig: Any, path: Path, dpi: int = 70, colors: int = 128) -> Path:
    """Save a figure as a palette PNG (``colors`` colours): a few hundred kB instead of a few MB."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    buffer.seek(0)
    Image.open(buffer).convert("RGB").quantize(colors=colors).save(path, optimize=True)
    return path


def cams_figure(runs: list, path: Path, n: int = 6) -> Path:
    """Seed-0 CAMs of CAM / ADL / SAGD stage 1 / stage 1+2 / DGDM on the first ``n`` test images
    (GT red, tau-0.2 boxes green)."""
    from dgdm_lib.evaluation import collect_cams
    from dgdm_lib.experiments import beetle_loader, trained_model
    from dgdm_lib.views.cams import comparison_figure

    names = {"cam": "CAM", "adl": "ADL", "sagd": "SAGD-1", "sagd12": "SAGD-1+2", "dgdm": "DGDM"}
    order = sorted(runs, key=lambda r: list(names).index(r.method))
    camsets = {names[r.method]: collect_cams(trained_model(r, progress=False), beetle_loader(r, "test", size=n),
                                             keep_images=n) for r in order}
    fig = comparison_figure(camsets, n=n, tau=0.2,
                            title="Beetles test images, seed 0: GT-class CAMs, GT boxes red, boxes at tau = 0.2 green")
    return save_small_png(fig, path)


def section_cost(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks import cost

    if args.tiny:
        result = cost.run_cost(
            devices=args.device or ["cpu"],
            backbones={"cpu": (cost.BackboneCase("small", 64, 8),), "cuda": (cost.BackboneCase("small", 64, 8),)},
            module_shape=(8, 64, 14, 14), module_reps=3, backbone_reps={"small": 3}, log=log, forward_share=1,
        )
    else:
        result = cost.run_cost(devices=args.device, log=log)
    return result


def section_book(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks import book_cost
    from tools.book import book_notebooks

    sizes = {"train": 64, "val": 16, "test": 16} if args.tiny else None
    log("[book] timing dataset generation ...")
    out: dict[str, Any] = {"dataset": book_cost.dataset_generation(sizes)}
    log(f"[book] beetles generated in {out['dataset']['total_s']:.1f} s")
    out["notebooks"] = book_cost.notebook_times(book_notebooks(), args.build, args.book_source, args.book_modes, log)
    return out


def photo_plan(args: argparse.Namespace):
    """The photos section's plan from the options (``--tiny``: a 1-2 minute smoke run)."""
    from benchmarks.photos import DEFAULT_METHODS, PhotoPlan

    tiny = args.tiny
    return PhotoPlan(
        classes=args.photo_classes or (2 if tiny else 10),
        epochs=args.photo_epochs or (1 if tiny else 6),
        seeds=tuple(args.seeds[:1] if tiny else args.seeds),
        methods=tuple(args.photo_methods or (("cam", "dgdm") if tiny else DEFAULT_METHODS)),
        imagenet_limit=args.imagenet_limit or (20 if tiny else None),
    )


def section_photos(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.photos import run_photos

    plan = photo_plan(args)
    log(f"[photos] {plan.classes} CUB species, epochs {plan.epochs}, methods {', '.join(plan.methods)}, seeds "
        f"{plan.seeds}, ImageNet images: {plan.imagenet_limit or 'all'}")
    return run_photos(plan, log)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------
def _command(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python benchmarks/run.py", *args]).strip()


def _accuracy_history(json_path: Path, section: dict[str, Any]) -> list[dict[str, Any]]:
    """The invocations that trained this table's runs: the earlier ones recorded in results.json
    for the same seeds and schedule (a ``--resume`` re-run reads their runs from the cache), then
    this one. Lets the page say how long training really took, not how long a re-read took."""
    keep = ("command", "started", "seconds", "load_before", "load_after", "threads", "jobs", "trained_now")
    entry = {**{k: section["meta"].get(k) for k in keep}, "trained_now": section["training"]["trained_now"]}
    history: list[dict[str, Any]] = []
    try:
        previous = json.loads(json_path.read_text()).get("accuracy", {})
    except (OSError, ValueError):
        previous = {}
    same_plan = previous.get("plan", {}).get("schedule") == section["plan"]["schedule"] and \
        set(previous.get("plan", {}).get("seeds", [])) <= set(section["plan"]["seeds"])
    if same_plan and not section["meta"].get("fresh"):
        history = [h for h in previous.get("history", []) if h.get("trained_now")]
    return history + [entry]


def write(results: dict[str, Any], out: Path, keep_other_sections: bool = False) -> tuple[Path, Path]:
    """Write results.json and results.md (atomically). With ``keep_other_sections``, the sections
    this run did not produce are taken from the file as it is *now*, so two partial runs that
    overlap in time (``--only cost`` while ``--only accuracy`` trains) do not erase each other."""
    from benchmarks import report
    from dgdm_lib.atomic import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "results.json", out / "results.md"
    if keep_other_sections and json_path.is_file():
        try:
            on_disk = json.loads(json_path.read_text())
        except ValueError:
            on_disk = {}
        results = {**results, **{k: on_disk[k] for k in SECTIONS if k in on_disk and k not in results}}
    for path, text in ((json_path, json.dumps(report.nan_to_none(results), indent=1, default=str) + "\n"),
                       (md_path, report.render(results, out))):
        atomic_write_text(path, text)
    return json_path, md_path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    json_path = args.out / "results.json"
    if args.report_only:
        if not json_path.is_file():
            raise SystemExit(f"--report-only needs {json_path}: run the benchmark first")
        write(json.loads(json_path.read_text()), args.out)
        log(f"re-rendered {args.out / 'results.md'}")
        return 0

    force_classroom()
    data = prepare_data_dir(args.data, args.fresh)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from benchmarks import environment

    began = time.perf_counter()
    partial = set(args.only) != set(SECTIONS)
    results: dict[str, Any] = {}
    results.update({
        "schema": 1, "generated": environment.now(), "command": _command(argv), "sections_run": list(args.only),
        "machine": environment.machine(), "versions": environment.versions(), "git": environment.git_commit(ROOT),
        "data_dir": str(data), "fresh": args.fresh, "tiny": args.tiny, "jobs": args.jobs, "threads": args.threads,
    })
    log(f"[bench] data folder {data} ({'emptied' if args.fresh else 'reused'}); classroom mode; "
        f"sections {', '.join(args.only)}; output {args.out}")
    sections = {"accuracy": lambda: section_accuracy(args, args.out), "cost": lambda: section_cost(args),
                "book": lambda: section_book(args), "photos": lambda: section_photos(args)}
    for name in SECTIONS:
        if name in args.only:
            meta = {"command": results["command"], "started": environment.now(), "load_before": environment.load_average(),
                    "data_dir": str(data), "fresh": args.fresh, "jobs": args.jobs,
                    "threads": args.worker_threads if name == "accuracy" and args.jobs > 1 else torch_threads(),
                    "cores": os.cpu_count()}
            began_section = time.perf_counter()
            results[name] = sections[name]()
            meta.update(seconds=round(time.perf_counter() - began_section, 1), load_after=environment.load_average())
            results[name]["meta"] = meta
            if name == "accuracy":
                results[name]["history"] = _accuracy_history(json_path, results[name])
            log(f"[{name}] done in {meta['seconds'] / 60:.1f} min")
            write(results, args.out, keep_other_sections=partial)
    results["total_seconds"] = round(time.perf_counter() - began, 1)
    json_out, md_out = write(results, args.out, keep_other_sections=partial)
    log(f"[bench] wrote {md_out} and {json_out} in {results['total_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
