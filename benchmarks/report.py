"""docs/results.md and its figures, written from the results dictionary alone (docs/results.json),
so the page can be re-rendered without re-running anything (``run.py --report-only``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from benchmarks.accuracy import CLAIM_METRICS, KEYS
from benchmarks.cost import verdict

FIG_DPI = 90
SHORT = {
    "top1_clas": "Top-1 Clas", "gt_known_loc@0.2": "Loc @0.2", "gt_known_loc@tau_val": "Loc @val tau",
    "top1_loc@tau_val": "Top-1 Loc", "maxboxacc_v2": "MaxBoxAccV2", "pxap": "PxAP",
}


# --------------------------------------------------------------------------------------------
# Cells
# --------------------------------------------------------------------------------------------
def cell(stat: dict[str, Any] | None, digits: int = 1) -> str:
    """``mean ± sd [lo, hi]`` (95% t interval), or the mean alone for one seed."""
    if not stat:
        return "–"
    mean = f"{stat['mean']:.{digits}f}"
    if stat.get("ci95") is None:
        return mean
    lo, hi = stat["ci95"]
    return f"{mean} ± {stat['sd']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def signed(diff: dict[str, Any]) -> str:
    text = f"{diff['diff']:+.1f}"
    if diff.get("ci95"):
        text += f" [{diff['ci95'][0]:+.1f}, {diff['ci95'][1]:+.1f}]"
    return text


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def accuracy_table(entries: list[dict[str, Any]], show_note: bool = True) -> str:
    header = ["Row", "n", *KEYS.values(), "val tau"] + (["Note"] if show_note else [])
    rows = []
    for e in entries:
        tau = e.get("tau_val")
        row = [e["row"], str(e["n"]), *(cell(e.get(k)) for k in KEYS),
               f"{tau['mean']:.2f}" if tau else "–"]
        if show_note:
            row.append(e.get("note", ""))
        rows.append(row)
    return _table(header, rows)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def methods_figure(entries: list[dict[str, Any]], path: Path) -> Path:
    """Grouped bars (mean, 95% interval, seeds as dots) of the localisation metrics per method."""
    import numpy as np
    from matplotlib.figure import Figure

    keys = ["gt_known_loc@0.2", "gt_known_loc@tau_val", "maxboxacc_v2", "pxap"]
    fig = Figure(figsize=(8.5, 3.7), dpi=FIG_DPI, layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(entries)
    colours = ["#7f7f7f", "#1f77b4", "#2ca02c", "#98df8a", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    for i, entry in enumerate(entries):
        xs = np.arange(len(keys)) + (i - (len(entries) - 1) / 2) * width
        means = [entry[k]["mean"] if k in entry else np.nan for k in keys]
        errs = [[0, 0] if k not in entry or entry[k]["ci95"] is None else
                [entry[k]["mean"] - entry[k]["ci95"][0], entry[k]["ci95"][1] - entry[k]["mean"]] for k in keys]
        ax.bar(xs, means, width, yerr=np.array(errs).T, capsize=2, label=entry["row"],
               color=colours[i % len(colours)], edgecolor="black", linewidth=0.4)
        for x, k in zip(xs, keys):
            if k in entry:
                ax.plot([x] * len(entry[k]["values"]), entry[k]["values"], "k.", markersize=2.5)
    ax.set_xticks(np.arange(len(keys)), [SHORT.get(k, k) for k in keys])
    ax.set_ylabel("percent (test split)")
    ax.set_ylim(0, 100)
    ax.set_title("Beetles, small CPU network: mean over seeds, 95% interval, dots = seeds", fontsize=10)
    fig.legend(fontsize=7, ncols=len(entries), loc="outside lower center")
    fig.savefig(path)
    return path


def contrast_figure(entries: list[dict[str, Any]], path: Path) -> Path:
    """GT-known Loc at tau 0.2 and at the val-chosen tau against pattern contrast, one line per method."""
    from matplotlib.figure import Figure

    by_method: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for entry in entries:
        name, _, contrast = entry["row"].rpartition(" @ ")
        by_method.setdefault(name, []).append((float(contrast), entry))
    fig = Figure(figsize=(8.5, 3.0), dpi=FIG_DPI, layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, key in zip(axes, ["gt_known_loc@0.2", "gt_known_loc@tau_val", "top1_clas"]):
        for name, points in by_method.items():
            points.sort(key=lambda p: p[0])
            xs = [p[0] for p in points]
            ys = [p[1][key]["mean"] for p in points]
            lo = [p[1][key]["ci95"][0] if p[1][key]["ci95"] else y for p, y in zip(points, ys)]
            hi = [p[1][key]["ci95"][1] if p[1][key]["ci95"] else y for p, y in zip(points, ys)]
            line = ax.plot(xs, ys, marker="o", markersize=3, label=name)[0]
            ax.fill_between(xs, [max(v, 0) for v in lo], [min(v, 100) for v in hi], color=line.get_color(), alpha=0.15)
        ax.set_ylim(0, 100)
        ax.set_xticks(sorted({p[0] for pts in by_method.values() for p in pts}))
        ax.set_xlabel("pattern contrast (body texture cue)")
        ax.set_ylabel("percent")
        ax.set_title(SHORT[key] if key != "top1_clas" else "Top-1 Clas", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle("Beetles: localisation and classification against pattern contrast (mean over seeds, 95% band)",
                 fontsize=9)
    fig.savefig(path)
    return path


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------
def _minutes(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def _provenance(meta: dict[str, Any] | None, extra: str = "", show_jobs: bool = False) -> str:
    """One line: the command that produced a section, when, how long, under what load."""
    if not meta:
        return ""
    cache = "emptied first (from scratch)" if meta.get("fresh") else "cache reused"
    threads = f", torch threads {meta['threads']}" if meta.get("threads") else ""
    jobs = f", {meta['jobs']} runs trained in parallel" if show_jobs and (meta.get("jobs") or 1) > 1 else ""
    return (f"*Produced by `{meta['command']}` on {meta['started']} in {_minutes(meta.get('seconds'))}"
            f"{'; ' + extra if extra else ''}; data folder `{meta.get('data_dir')}` ({cache}){threads}{jobs}; "
            f"load average (1/5/15 min) before {_fmt_load(meta.get('load_before'))}, after "
            f"{_fmt_load(meta.get('load_after'))} on {meta.get('cores', 2)} cores.*")


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} s"


def _fmt_load(load: list[float] | None) -> str:
    return "n/a" if not load else " / ".join(f"{x:.2f}" for x in load)


def _claims_section(results: dict[str, Any]) -> list[str]:
    acc = results.get("accuracy")
    lines = ["## Which of the paper's claims hold here", ""]
    if not acc:
        return lines + ["The accuracy section has not been run.", ""]
    lines += [
        "Differences are `better - baseline` in points, mean over seeds with a Welch 95% interval. "
        "**holds**: the whole interval is above 0; **reversed**: the whole interval is below 0; "
        "**not shown**: the interval contains 0 (with this many seeds we cannot tell). The paper's "
        "own protocol is GT-known Loc at the fixed tau = 0.2; the other two columns choose the "
        "threshold on the validation split or integrate over it (Choe et al., CVPR 2020).", "",
    ]
    header = ["Claim (source)", *(SHORT[k] for k in CLAIM_METRICS)]
    rows = []
    for claim in acc.get("claims", []):
        cells = []
        for key in CLAIM_METRICS if "top1_clas" not in claim["metrics"] else ["top1_clas"]:
            m = claim["metrics"].get(key)
            if m is None:
                cells.append("–")
            elif "best" in m:
                cells.append(f"best: {m['best']} ({m['best_mean']:.1f}) — **{m['verdict']}**")
            else:
                cells.append(f"{signed(m)} **{m['verdict']}**")
        if "top1_clas" in claim["metrics"]:
            cells = [f"Top-1 Clas {cells[0]}", "", ""]
        rows.append([f"{claim['claim']} ({claim['source']})", *cells])
    cost = results.get("cost", {}).get("devices", {})
    for name, entry in cost.items():
        target = entry["target_ratio"]
        parts = []
        for row in entry["backbones"]:
            r = row["ratio"].get("dgdm")
            if r:
                ok = {"below target": "holds", "above target": "not met"}.get(verdict(r, target), "not resolved")
                parts.append(f"{row['arch']}{' AMP' if row['amp'] else ''} x{r['median']:.3f} {_interval(r)} **{ok}**")
        rows.append([f"No computation overhead: DGDM / backbone step time < {target} on {name} "
                     f"({entry['device']})", "; ".join(parts), "", ""])
    lines.append(_table(header, rows))
    lines.append("")
    lines += _plain_words(acc)
    for name, entry in cost.items():
        worst = max((row for row in entry["backbones"] if "dgdm" in row["ratio"]),
                    key=lambda row: row["ratio"]["dgdm"]["median"], default=None)
        if worst is not None:
            r = worst["ratio"]["dgdm"]
            said = {"below target": "holds", "above target": "does not hold"}.get(
                verdict(r, entry["target_ratio"]), "not resolved by this run's timing noise")
            lines.insert(len(lines) - 1, f"- No computation overhead on {name} ({entry['device']}): **{said}**; the "
                         f"largest DGDM / CAM step-time ratio is x{r['median']:.3f} {_interval(r)} on "
                         f"{worst['arch']}, against the target {entry['target_ratio']}.")
    return lines


def _plain_words(acc: dict[str, Any]) -> list[str]:
    """The verdicts above in sentences, generated from the same numbers."""
    out = ["In plain words:", ""]
    for claim in acc.get("claims", []):
        m = claim["metrics"]
        if "top1_clas" in m:
            out.append(f"- {claim['claim']}: **{m['top1_clas']['verdict']}** (difference {signed(m['top1_clas'])}).")
            continue
        paper = m.get("gt_known_loc@0.2")
        fair = m.get("gt_known_loc@tau_val")
        if paper is None:
            continue
        if "best" in paper:
            out.append(f"- {claim['claim']}: at tau 0.2 the best row is {paper['best']} ({paper['verdict']}); "
                       f"at the val-chosen tau it is {fair['best'] if fair else '–'}.")
        else:
            out.append(f"- {claim['claim']}: **{paper['verdict']}** under the paper's protocol (tau 0.2, "
                       f"{signed(paper)}); with the threshold chosen on val: **{fair['verdict'] if fair else '–'}** "
                       f"({signed(fair) if fair else '–'}).")
    out.append("")
    return out


def _accuracy_section(acc: dict[str, Any], doc_dir: Path) -> list[str]:
    sched = acc["plan"]["schedule"]
    training = acc.get("training", {})
    lines = [
        "## Accuracy on beetles (small CPU network)", "",
        f"Seeds {', '.join(map(str, acc['plan']['seeds']))}; classroom schedule: {sched['epochs']} epochs on "
        f"{sched['train_size']} training images (AdamW lr 2e-3 one-cycle, batch 64, flips); the threshold tau "
        f"is chosen on the {sched['val_size']} validation images (maximising GT-known Loc) and every number "
        f"is on the {sched['test_size']} test images. Cells: mean ± sd [95% t interval] over seeds, in percent. "
        f"{len(acc['runs'])} distinct runs. Training time of a run as recorded when it was trained: median "
        f"{_seconds(training.get('median_train_s'))}, all runs together {_minutes(training.get('sum_train_s'))}.", "",
        _provenance(acc["meta"], f"{training.get('trained_now', '?')} runs trained (the others read from the cache)",
                    show_jobs=True), "",
    ]
    trained_by = [h for h in acc.get("history", []) if h.get("trained_now")]
    if trained_by:
        lines += ["Invocations that trained these runs (runs already in the data folder's cache, e.g. trained by "
                  "the notebooks with the same settings, were reused):", ""]
        lines += [f"- `{h['command']}` on {h['started']}: {h['trained_now']} runs in {_minutes(h.get('seconds'))}, "
                  f"torch threads {h.get('threads') or 'default'}, {h.get('jobs') or 1} at a time; load average "
                  f"{_fmt_load(h.get('load_before'))} before, {_fmt_load(h.get('load_after'))} after" for h in trained_by]
        lines.append("")
    tables = acc["tables"]
    titles = {
        "methods": ("### Methods (pattern contrast 0.09)",
                    "CAM, ADL, the paper's ablation rows (stage 1; stage 1+2; + CAGD = DGDM) and the random-block "
                    "control (torchvision DropBlock, block 3, p = 0.1, same drop_rate 0.75)."),
        "block_size": ("### Block size (SAGD stage 1)",
                       "The block grown around each dropped position. The paper's best on 14x14 VGG maps is 2 for "
                       "stage 1; our maps are 16x16, where \"adaptive\" = ceil(16/7) = 3 coincides with block 3, so "
                       "those rows are the same runs."),
        "beta": ("### CAGD threshold beta (DGDM)",
                 "Channels with |S_c| >= beta * min_c |S_c| are always kept; the others are dropped with "
                 "probability alpha = 0.5. See \"CAGD at work\" below for how many channels the rule leaves droppable."),
        "contrast": ("### Pattern contrast (how strong the body's texture cue is)",
                     "0.09 is the book's default (the rows above); 0.06 makes the head an even stronger shortcut, "
                     "0.12 gives the body a usable cue."),
    }
    for group, (title, text) in titles.items():
        if group not in tables:
            continue
        lines += [title, "", text, "", accuracy_table(tables[group], show_note=group in ("block_size", "beta")), ""]
        fig = acc.get("figures", {}).get(group)
        if fig:
            lines += [f"![{group}]({fig})", ""]
    cams = acc.get("figures", {}).get("cams")
    if cams:
        lines += ["### What the maps look like (seed 0, first test images)", "",
                  "GT-class CAMs over the image (CAM, ADL, SAGD stage 1, stage 1+2, DGDM); GT boxes red, boxes at "
                  "tau = 0.2 green (the paper's Fig. 5 style); each title gives the IoU and the predicted class.", "",
                  f"![cams]({cams})", ""]
    activity = acc.get("cagd_activity")
    if activity:
        lines += ["### CAGD at work", "",
                  f"On the trained seed-0 DGDM network ({activity['images']} validation images, eval mode), the "
                  "share of channels CAGD may drop (|S_c| < beta * min_c |S_c|) at each insertion point, the "
                  "share of images whose weakest channel has S_c = 0 (then the beta rule drops nothing: docs/methods.md's "
                  "\"reading chosen\"; `keep_ratio` is the alternative), and the share of images with no "
                  "important channel (max_c |S_c| < beta * min_c |S_c|: then even the strongest channel is "
                  "dropped with probability alpha).", ""]
        betas = list(next(iter(activity["positions"].values()))["droppable_share"])
        rows = [[pos, str(v["channels"]), f"{v['dead_min_share']:.0f}%",
                 *(f"{v['droppable_share'][b]:.1f}%" for b in betas),
                 *(_share(v.get("none_important_share", {}).get(b)) for b in betas)]
                for pos, v in activity["positions"].items()]
        header = ["Position", "C", "images with min S_c = 0", *(f"droppable, beta {b}" for b in betas),
                  *(f"images with none important, beta {b}" for b in betas)]
        lines += [_table(header, rows), ""]
    return lines


def _share(value: float | None) -> str:
    """A percentage cell; a dash for results measured before the column existed."""
    return "–" if value is None else f"{value:.1f}%"


def _interval(ratio: dict[str, float]) -> str:
    """``(95% CI a-b)`` of a median ratio, or the quartiles for results written before intervals existed."""
    if "ci_low" in ratio:
        return f"(95% CI {ratio['ci_low']:.3f}-{ratio['ci_high']:.3f})"
    return f"(quartiles {ratio['q25']:.3f}-{ratio['q75']:.3f})"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _skipped(part: dict[str, Any] | None) -> str | None:
    """The reason a photos part did not run, or None when it ran."""
    if part is None:
        return "not run"
    return part.get("skipped")


def _protocol_line(protocol: dict[str, str]) -> str:
    """How the section's boxes and maps were scored (docs/methods.md, "Box conventions")."""
    return (f"Scored with `{protocol['boxes']}` boxes and {protocol['upsample']} CAM upsampling "
            "(docs/methods.md, \"Box conventions\").")


def _photos_section(photos: dict[str, Any]) -> list[str]:
    """Real photographs: pretrained Lite0 on ImageNet, the CUB fine-tunes, the fast fine-tune's speed."""
    plan = photos.get("plan", {})
    tau = plan.get("tau", 0.2)
    lines = ["## Real photographs", ""]
    cub = photos.get("cub") or {}
    runs = cub.get("runs", [])
    extra = f"seeds {', '.join(map(str, plan.get('seeds', [])))}"
    if runs:
        now = cub.get("trained_now", 0)
        extra += (f"; {_plural(len(runs), 'fine-tune')}, "
                  + ("all trained now" if now == len(runs) else f"{now} trained now, the others read from the cache"))
    if "variants" in (photos.get("speed") or {}):
        extra += f", plus the {len(photos['speed']['variants'])} timing runs below"
    lines += [_provenance(photos.get("meta"), extra), "", _protocol_line(photos["protocol"]), ""]

    lines += ["### The ImageNet classifier, no training", ""]
    net = photos.get("imagenet") or {}
    why = _skipped(net)
    if why:
        lines += [f"Skipped: {why}", ""]
    else:
        gt = net.get(f"gt_known_loc@{tau:g}")
        lines += [
            f"EfficientNet-Lite0 with its ImageNet weights and 1000-class classifier; the CAM of the true class on "
            f"{net['images']} ILSVRC validation images (`{net['root']}`), in {net['seconds']:.0f} s with "
            f"{net['torch_threads']} torch threads.", "",
            _table(["Images", "Top-1 Clas", f"GT-known Loc @{tau:g}", "MaxBoxAcc (best tau)", "MaxBoxAccV2",
                    f"CAM box / GT box area at tau {tau:g}: median", "share below 1"],
                   [[str(net["images"]), f"{net['top1_clas']:.1f}", "–" if gt is None else f"{gt:.1f}",
                     f"{net['maxboxacc']:.1f} ({net['best_tau']:.2f})", f"{net['maxboxacc_v2']:.1f}",
                     f"{net['box_ratio_median']:.2f}", f"{net['box_ratio_below_1']:.0f}%"]]), "",
            f"A median area ratio below 1 means the box at tau {tau:g} is usually smaller than the object: the "
            f"classifier looks at the part that names the class." if net["box_ratio_median"] < 1 else
            f"The median area ratio is not below 1: at tau {tau:g} the boxes are usually at least as large as "
            f"the objects.", "",
        ]

    lines += ["### Fine-tuned on CUB birds", ""]
    why = _skipped(cub)
    if why:
        lines += [f"Skipped: {why}", ""]
    else:
        r = cub["recipe"]
        images = cub["images"]
        lines += [
            f"The pretrained Lite0 fine-tuned on the first {r['classes']} CUB species "
            f"({', '.join(s.replace('_', ' ') for s in cub['species'])}) of `{cub['root']}`: modules after "
            f"{', '.join(r['positions'])}; backbone frozen through {r['freeze']}; {r['optimizer'].upper()} lr "
            f"{r['lr']:g} {r['schedule'].replace('onecycle', 'one-cycle')}, batch {r['batch_size']}, "
            f"{_plural(r['epochs'], 'epoch')}, "
            f"{r['image_size']} px crops of {r['resize']} px images with flips. CUB has no validation split: tau is chosen on {r['val_per_class']} training "
            f"images per species carved out before training ({images['val']} images; {images['train']} left to "
            f"train on), and every number is on the {images['test']} test images. Backbone: "
            f"{cub['backbone'].rstrip('.')}. Cells: mean ± sd [95% t interval] over seeds, in percent; training "
            f"seconds as recorded when the run was trained.", "",
        ]
        header = ["Method", "n", "Top-1 Clas", f"GT-known Loc @{tau:g}", "GT-known Loc @val tau", "MaxBoxAccV2",
                  "val tau", "train s", "s / epoch (mean)"]
        rows = []
        for row in cub["table"]:
            t = row.get("tau_val")
            rows.append([row["name"], str(row["n"]), cell(row.get("top1_clas")), cell(row.get("gt_known_loc@0.2")),
                         cell(row.get("gt_known_loc@tau_val")), cell(row.get("maxboxacc_v2")),
                         f"{t['mean']:.2f}" if t else "–", cell(row.get("train_seconds"), 0),
                         cell(row.get("mean_epoch_s"), 1)])
        lines += [_table(header, rows), ""]
        lines += _photo_verdicts(cub.get("vs_baseline", []), plan, tau)

    lines += ["### What the fast fine-tune costs", ""]
    sp = photos.get("speed") or {}
    why = _skipped(sp)
    if why:
        lines += [f"Skipped: {why}", ""]
    else:
        variants = sp["variants"]
        fast = variants["fast"]
        label = {"fast": f"fast (frozen through {fast['freeze']})", "plain": "plain (full backprop)"}
        kept = fast["timed_epochs"]
        epochs = f"epoch {kept[0]}" if len(kept) == 1 else f"epochs {kept[0]}-{kept[-1]}"
        rows = [[label[name], f"{v['trainable_parameters'] / 1e6:.2f} M of {v['parameters'] / 1e6:.2f} M",
                 f"{v['median_epoch_s']:.1f}", ", ".join(f"{x:.1f}" for x in v["epoch_seconds"]),
                 f"{v['train_seconds']:.0f}", f"{v['top1_clas']:.1f}", f"{v['gt_known_loc@0.2']:.1f}",
                 f"{v['gt_known_loc@tau_val']:.1f}", f"{v['maxboxacc_v2']:.1f}", _fmt_load(v.get("load_after"))]
                for name, v in variants.items()]
        cost = sp["accuracy_cost"]
        lines += [
            f"{sp['method_name']}, seed {sp['seed']}, the same recipe trained twice now (never read from the "
            f"cache), one after the other in this process with {sp['torch_threads']} torch threads: backbone "
            f"frozen through {fast['freeze']} (the recipe above) and plain full backprop (nothing frozen). "
            "Seconds per epoch: " + (f"median over {epochs} (the first epoch has the warm-up)" if kept[0] > 1 else
                                     f"{epochs} only (a single epoch was trained: its time includes the warm-up)")
            + f"; load average before {_fmt_load(sp.get('load_before'))}.", "",
            _table(["Fine-tune", "trainable parameters", f"s / epoch (median, {epochs})", "every epoch (s)",
                    "train s", "Top-1 Clas", f"GT-known Loc @{tau:g}", "GT-known Loc @val tau", "MaxBoxAccV2",
                    "load average after"], rows), "",
            f"The fast fine-tune is **{sp['speedup']:.2f}x** as fast as full backprop per epoch (ratio of the "
            f"medians above). What it costs, fast - plain in points on one seed (no interval: a few test images "
            f"decide a point): Top-1 Clas {cost['top1_clas']:+.1f}, GT-known Loc @{tau:g} "
            f"{cost['gt_known_loc@0.2']:+.1f}, @val tau {cost['gt_known_loc@tau_val']:+.1f}, MaxBoxAccV2 "
            f"{cost['maxboxacc_v2']:+.1f}." if sp.get("speedup") else "No speed-up could be computed.", "",
        ]
    return lines


def _photo_verdicts(comparisons: list[dict[str, Any]], plan: dict[str, Any], tau: float) -> list[str]:
    """Each method against CAM: the differences with their intervals and verdicts, then in words."""
    if not comparisons:
        return ["No comparison with CAM: CAM was not among the methods run.", ""]
    margin = plan.get("top1_margin", 1.0)
    base = comparisons[0]["baseline_name"]
    keys = ["gt_known_loc@0.2", "gt_known_loc@tau_val", "maxboxacc_v2", "top1_clas"]
    heads = [f"GT-known Loc @{tau:g}", "GT-known Loc @val tau", "MaxBoxAccV2",
             f"Top-1 Clas (not more than {margin:g} below)"]
    lines = [
        f"Against {base}: `method - {base}` in points, mean over seeds with a Welch 95% interval, and the verdicts "
        f"of the beetles claims above: **holds** when the whole interval is above 0 (for Top-1: above -{margin:g}, "
        f"\"keeps classification\"), **reversed** when it is below, **not shown** when it straddles; with one "
        f"seed there is no interval and the verdict reads the sign alone.", "",
    ]
    rows = []
    for comp in comparisons:
        cells = []
        for key in keys:
            m = comp["metrics"].get(key)
            cells.append("–" if m is None else f"{signed(m)} **{m['verdict']}**")
        rows.append([f"{comp['name']} vs {base}", *cells])
    lines += [_table(["Comparison", *heads], rows), "", "In plain words:", ""]
    for comp in comparisons:
        m = comp["metrics"]
        parts = [f"{label} **{m[key]['verdict']}** ({signed(m[key])})"
                 for key, label in (("gt_known_loc@0.2", f"at tau {tau:g}"), ("gt_known_loc@tau_val", "at the val tau"),
                                    ("maxboxacc_v2", "in MaxBoxAccV2")) if key in m]
        text = f"- {comp['name']} localises birds better than {base}: " + "; ".join(parts) + "."
        if "top1_clas" in m:
            text += (f" It keeps {base}'s classification (Top-1 no more than {margin:g} "
                     f"point{'' if margin == 1 else 's'} below): "
                     f"**{m['top1_clas']['verdict']}** ({signed(m['top1_clas'])}).")
        lines.append(text)
    lines.append("")
    return lines


def _cost_section(cost: dict[str, Any]) -> list[str]:
    lines = ["## Cost: training-step time", "", _provenance(cost.get("meta")), "",
             "One training step = forward, cross-entropy, backward (no optimiser step), channels-last, on random "
             "inputs. Variants of a comparison are timed in the same process, interleaved (every repetition runs "
             "each variant once, in a rotated order); the ratio to the plain backbone is taken within a "
             "repetition. Median [first quartile, third quartile] over repetitions; for ratios also the 95% "
             "bootstrap interval of the median (seed 0). The target is met when that whole interval lies below it, "
             "missed when it lies above, and *not resolved* when it straddles the target.", ""]
    if "cuda" not in cost.get("devices", {}):
        lines += ["**No GPU was available for this run**: the table has CPU rows only. Run `make bench` on a "
                  "machine with CUDA to add GPU rows (with AMP).", ""]
    for name, entry in cost.get("devices", {}).items():
        mods = entry["modules"]
        lines += [f"### {name}: {entry['device']}", "",
                  f"Modules alone, forward + backward on a rectified random F of shape ({', '.join(map(str, mods['shape']))}), "
                  f"{mods['reps']} repetitions:", ""]
        rows = [[n, f"{m['median']:.2f} [{m['q25']:.2f}, {m['q75']:.2f}]"] for n, m in mods["ms"].items()]
        lines += [_table(["Module", "ms"], rows), ""]
        share = entry.get("forward_share")
        if share:
            vgg, dgdm = share["vgg16_forward_ms"], share["dgdm_forward_ms"]
            lines += [f"Forward only, no gradients, batch {share['batch']}: one DGDM forward on F of shape "
                      f"({share['batch']}, 512, 14, 14) takes {dgdm['median']:.2f} ms (median of {share['module_reps']}), "
                      f"one VGG16-GAP forward at 224 px {vgg['median']:.0f} ms (median of {share['backbone_reps']}): "
                      f"DGDM adds **{100 * share['share']:.2f}%** (the methods issue's bound: 5%).", ""]
        rows = []
        for row in entry["backbones"]:
            for method, ms in row["ms"].items():
                r = row["ratio"].get(method)
                ratio = f"{r['median']:.3f} [{r['q25']:.3f}, {r['q75']:.3f}]" if r else "1 (reference)"
                flag = ""
                if r:
                    ratio += f"; median in {_interval(r)}" if "ci_low" in r else ""
                if r and method == "dgdm":
                    flag = verdict(r, entry["target_ratio"])
                    flag = f"**{flag}**" if flag != "below target" else flag
                rows.append([f"{row['arch']} {row['input']}px x{row['batch']}{' AMP' if row['amp'] else ''}",
                             method, ", ".join(row["positions"][method]) or "–",
                             f"{ms['median']:.1f} [{ms['q25']:.1f}, {ms['q75']:.1f}]", ratio, flag])
        reps = ", ".join(f"{row['arch']} {row['reps']}" for row in entry["backbones"])
        lines += [f"Backbones (repetitions: {reps}; target for DGDM: ratio < {entry['target_ratio']}):", "",
                  _table(["Backbone", "Method", "Insertion points", "ms / step", "ratio to CAM", "DGDM target"], rows), ""]
    return lines


def _book_section(book: dict[str, Any]) -> list[str]:
    lines = ["## Book cost", "", _provenance(book.get("meta")), ""]
    data = book.get("dataset")
    if data:
        parts = ", ".join(f"{s} {data['sizes'][s]} images {t:.2f} s" for s, t in data["seconds"].items())
        lines += [f"Generating the beetles splits at the default parameters (in memory, this machine): {parts}; "
                  f"total {data['total_s']:.1f} s (aim: seconds; cached afterwards).", ""]
    nbs = book.get("notebooks", {})
    if nbs:
        names = sorted({n for mode in nbs.values() for n in mode["notebooks"]})
        header = ["Notebook", *(f"{m} (budget {nbs[m]['budget_s']:.0f} s)" for m in nbs)]
        rows, sources = [], {}
        for name in names:
            cells = []
            for data_mode in nbs.values():
                row = data_mode["notebooks"].get(name, {})
                src = sources.setdefault(row.get("source", "–"), f"({len(sources) + 1})")
                sec = row.get("seconds")
                text = "–" if sec is None else f"{sec:.0f} s"
                if sec is not None and sec > data_mode["budget_s"]:
                    text += " **over budget**"
                if row.get("error"):
                    text += " FAILED"
                if row.get("stale"):
                    text += " (notebook edited since)"
                cells.append(f"{text} {src}")
            rows.append([name, *cells])
        lines += [_table(header, rows), "", "Where each time comes from:", ""]
        lines += [f"- {mark} {src}" for src, mark in sources.items()]
        failures = [(mode, name, row["error"]) for mode, data_mode in nbs.items()
                    for name, row in data_mode["notebooks"].items() if row.get("error")]
        if failures:
            lines += ["", "Notebooks that failed (their time is up to the failing cell):", ""]
            lines += [f"- {name} ({mode}): `{error}`" for mode, name, error in failures]
        lines += ["", "Times are wall-clock on the machine above, with whatever else was running (see its load); "
                  "classroom notebooks reuse models the accuracy section or earlier chapters cached.", ""]
    return lines


def _seeds(results: dict[str, Any]) -> str:
    """The training seeds of the accuracy section, and the photos section's when they differ."""
    acc = results.get("accuracy", {}).get("plan", {}).get("seeds")
    photos = results.get("photos", {}).get("plan", {}).get("seeds")
    text = ", ".join(map(str, acc)) if acc is not None else "–"
    if photos is not None and photos != acc:
        text = (f"{text} (beetles); " if acc is not None else "") + f"{', '.join(map(str, photos))} (photos)"
    return text


def render(results: dict[str, Any], doc_dir: Path) -> str:
    """The whole page."""
    machine, versions = results["machine"], results["versions"]
    git = results.get("git", {})
    lines = [
        "# Benchmark results", "",
        "Generated by `benchmarks/run.py` (`make bench`); do not edit by hand: the numbers come from "
        "`docs/results.json`, written by the same run.", "",
        f"- Command: `{results['command']}`",
        f"- Date: {results['generated']} (sections run then: {', '.join(results['sections_run'])})",
        f"- Code: commit {git.get('commit')}{' with uncommitted changes' if git.get('dirty') else ''}",
        f"- Machine: {machine['cpu_model']}, nproc {machine['nproc']} ({machine['usable_cores']} usable), "
        f"{machine['memory_gib']} GiB, {machine['os']}, torch threads {machine['torch_threads']}; "
        f"GPU: {machine['gpu'] or 'none (no CUDA device: CPU rows only)'}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- Seeds (training): {_seeds(results)}; cost inputs are drawn with seed 0",
        "- Each section below says which command produced it, when, and under what load.",
        "",
    ]
    if results.get("tiny"):
        photo_plan = results.get("photos", {}).get("plan")
        photos = (f"; photos: {photo_plan['classes']} species, {_plural(photo_plan['epochs'], 'epoch')}, seeds "
                  f"{', '.join(map(str, photo_plan['seeds']))}" if photo_plan else "")
        lines += [f"> **Smoke-test configuration (`--tiny`)**: 1 epoch on 192 images, tiny cost cases{photos}. These "
                  "numbers only show that the pipeline runs; they say nothing about the methods.", ""]
    lines += _claims_section(results)
    if "accuracy" in results:
        lines += _accuracy_section(results["accuracy"], doc_dir)
    if "photos" in results:
        lines += _photos_section(results["photos"])
    if "cost" in results:
        lines += _cost_section(results["cost"])
    if "book" in results:
        lines += _book_section(results["book"])
    lines += [
        "## Protocol notes", "",
        "- The paper (Yin et al., ICPR 2020) reports GT-known Loc at a fixed tau = 0.2 on the test split. "
        "Here every table also gives the train-fullsup protocol of Choe et al. (CVPR 2020): tau chosen on a "
        "held-out validation split, then applied to test, plus the threshold-free MaxBoxAccV2 and PxAP.",
        "- Beetles (chapter 01) is a procedural dataset built to show the WSOL phenomenon on a CPU: the head alone "
        "identifies the class. Results here test the *direction* of the paper's claims, not its CUB / ILSVRC numbers.",
        "- Sources of randomness per run: the seed sets the initialisation, batch order, flips and the modules' "
        "draws; the dataset itself is fixed (base seed 0).",
        "",
    ]
    return "\n".join(line for line in lines if line is not None) + "\n"


def nan_to_none(obj: Any) -> Any:
    """JSON has no NaN: replace it by null, recursively."""
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {str(k): nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(v) for v in obj]
    return obj
