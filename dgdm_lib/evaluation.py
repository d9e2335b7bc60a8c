"""Evaluating a WSOL model over a loader: CAMs, the metrics of docs/methods.md, "Metrics", activation shares.

Two steps, so one pass over the data serves every threshold:

1. ``collect_cams(model, loader)`` runs the network once and keeps, per image, the logits, the
   GT-class CAM and the predicted-class CAM (upsampled to the image and min-max normalised, as
   docs/methods.md and chapter 02), the GT boxes as inclusive pixel boxes, and masks when the dataset has them.
2. ``evaluate(camset, tau=0.2)`` turns those into numbers with ``dgdm_lib.metrics`` (the same
   accumulators the notebooks and the benchmark use): Top-1 Clas, GT-known and Top-1 Loc at
   ``tau`` and at the best tau of this split, MaxBoxAcc, MaxBoxAccV2, PxAP, and on beetles the
   share of CAM mass on the head, the rest of the body and the background.

``evaluate_val_test`` follows the train-fullsup protocol of "Evaluating WSOL Methods Right":
the threshold is chosen on the validation split and then applied to test. The paper under
study (Yin et al.) reports test at a fixed tau = 0.2; both are reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dgdm_lib.cam import localization_cams, normalize_cams, upsample_cams
from dgdm_lib.localization import (
    edges_to_inclusive,
    reference_boxes,
)
from dgdm_lib.metrics import (
    CAM_THRESHOLDS,
    BoxAccumulator,
    ClassificationLocalization,
    PxAPAccumulator,
)

__all__ = [
    "CamSet",
    "SplitMetrics",
    "CamBatch",
    "activation_shares",
    "cam_batches",
    "collect_cams",
    "evaluate",
    "evaluate_loader",
    "evaluate_val_test",
    "gt_boxes_of_batch",
    "protocol_defaults",
    "resolve_protocol",
]



@dataclass
class CamSet:
    """Everything the metrics need for one split, image by image (N images of H x W).

    Attributes:
        logits: (N, K) class scores.
        labels: (N,) ground-truth classes.
        cams: (N, H, W) float32 GT-class CAMs in [0, 1] (upsampled, normalised per image).
        pred_cams: (N, H, W) predicted-class CAMs in [0, 1], or None if not kept.
        gt_boxes: N int arrays (k_i, 4), inclusive pixel boxes x0, y0, x1, y1.
        masks, head_masks: (N, H, W) bool, or None when the dataset has none.
        image_ids: N names, or None.
        images: the first few input images (n, 3, H, W), as the network saw them, for figures.
    """

    logits: Tensor
    labels: Tensor
    cams: np.ndarray
    pred_cams: np.ndarray | None
    gt_boxes: list[np.ndarray]
    masks: np.ndarray | None = None
    head_masks: np.ndarray | None = None
    image_ids: list[str] | None = None
    images: Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def predictions(self) -> Tensor:
        return self.logits.argmax(dim=1)


def _classify(net: nn.Module, features: Tensor) -> Tensor:
    if hasattr(net, "classify"):
        return net.classify(features)
    return net.classifier(features.mean(dim=(2, 3)))


def _normalised_cams(net: nn.Module, features: Tensor, classes: Tensor, size: tuple[int, int], mode: str) -> np.ndarray:
    """The network's maps for ``classes``, upsampled to ``size`` and normalised: its own
    ``class_maps`` when it has one (a method that owns its CAM), else ``sum_c W[k, c] F[c]``."""
    if hasattr(net, "class_maps"):
        maps = normalize_cams(upsample_cams(net.class_maps(features, classes), size, mode))
    else:
        maps = localization_cams(features, net.classifier.weight.float(), classes, size, mode)
    return maps.cpu().numpy().astype(np.float32, copy=False)


BOX_CONVENTIONS = ("reference", "edges")
UPSAMPLE_MODES = ("bicubic", "bilinear")


def real_photo_batch(targets: Mapping[str, Any]) -> bool:
    """True for a batch of a real-photo dataset (it carries the annotations as read)."""
    return "source_boxes" in targets and "source_size" in targets


def protocol_defaults(real: bool) -> tuple[str, str]:
    """``(upsample, boxes)`` by default: the reference evaluator's (bicubic, ``"reference"``) for real
    photographs, the library's (bilinear, ``"edges"``) for the beetles (docs/methods.md, "Box conventions")."""
    return ("bicubic", "reference") if real else ("bilinear", "edges")


def resolve_protocol(targets: Mapping[str, Any], upsample: str | None, boxes: str | None) -> tuple[str, str]:
    """The CAM upsampling and GT-box conversion for a batch (docs/methods.md, "Box conventions").

    ``None`` picks the default (``protocol_defaults``): the reference evaluator's protocol for real
    photographs, the library's for the beetles, whose boxes are exact pixel boxes and carry no
    annotation to convert.
    """
    real = real_photo_batch(targets)
    default_upsample, default_boxes = protocol_defaults(real)
    upsample, boxes = upsample or default_upsample, boxes or default_boxes
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {upsample!r}")
    if boxes not in BOX_CONVENTIONS:
        raise ValueError(f"boxes must be one of {', '.join(BOX_CONVENTIONS)}, got {boxes!r}")
    if boxes == "reference" and not real:
        raise ValueError(
            "boxes='reference' needs the annotations as read (targets 'source_boxes' and 'source_size'), which "
            "only the real-photo datasets carry: use boxes='edges' for the beetles"
        )
    return upsample, boxes


def gt_boxes_of_batch(targets: Mapping[str, Any], size: tuple[int, int], boxes: str) -> list[np.ndarray]:
    """The batch's GT boxes as inclusive pixel boxes of the (H, W) = ``size`` input, per ``boxes``."""
    if boxes == "edges":
        return [edges_to_inclusive(b.cpu().reshape(-1, 4), size[1], size[0]) for b in targets["boxes"]]
    out = []
    for moved, source, source_size in zip(targets["boxes"], targets["source_boxes"], targets["source_size"]):
        _check_plain_resize(moved, source, source_size, size)
        out.append(reference_boxes(source, source_size, size))
    return out


def _check_plain_resize(moved: Tensor, source: Any, source_size: tuple[int, int], size: tuple[int, int]) -> None:
    """The reference conversion scales the annotation; that is only right if the evaluation transform
    did nothing but resize the whole image (no crop, no flip), which the moved boxes show."""
    scale = np.array([size[1] / source_size[1], size[0] / source_size[0]] * 2)
    expected = np.asarray(source, dtype=np.float64).reshape(-1, 4) * scale
    moved = moved.detach().cpu().double().numpy().reshape(-1, 4)
    if moved.shape != expected.shape or np.abs(moved - expected).max() > 0.05:
        raise ValueError(
            "boxes='reference' scales each annotation to the input size, but this batch's transform did more "
            f"than resize the whole image (a box at {expected[0].round(1).tolist()} after resizing is at "
            f"{moved[0].round(1).tolist()}): evaluate with standard_transforms(train=False), or use boxes='edges'"
        )


@torch.no_grad()
def collect_cams(
    model: nn.Module,
    loader: Iterable,
    device: torch.device | str | None = None,
    upsample: str | None = None,
    keep_pred_cams: bool = True,
    keep_images: int = 16,
    max_images: int | None = None,
    boxes: str | None = None,
) -> CamSet:
    """Run ``model`` (eval mode) over ``loader`` and keep the CAMs of docs/methods.md and chapter 02 per image.

    Args:
        model: a ``WSOLNet`` (or anything with ``forward_features`` and ``classifier``).
        loader: yields ``(images (B, 3, H, W), targets)`` per the batch contract.
        upsample: ``"bilinear"`` or ``"bicubic"``, from the feature map (h, w) to (H, W); ``None``:
            bicubic for real photographs (the reference evaluator's), bilinear for the beetles.
        boxes: how GT boxes become inclusive pixel boxes, ``"reference"`` or ``"edges"``; ``None``:
            ``"reference"`` for real photographs, ``"edges"`` for the beetles (``resolve_protocol``).
        keep_pred_cams: also keep predicted-class CAMs (for Top-1 figures); doubles the memory.
        keep_images: how many input images to keep for figures.
        max_images: stop after this many images (quick looks).
    """
    logits_all, labels_all, cams, pred_cams, gt_boxes, masks, heads, ids, kept = [], [], [], [], [], [], [], [], []
    seen = 0
    # closing(): stopping early at max_images restores the model's mode at once, not at collection
    with closing(cam_batches(model, loader, device, upsample, boxes, keep_pred_cams)) as batches:
        for batch in batches:
            cams.append(batch.cams)
            if keep_pred_cams:
                pred_cams.append(batch.pred_cams)
            logits_all.append(batch.logits)
            labels_all.append(batch.labels)
            gt_boxes += batch.gt_boxes
            if batch.masks is not None:
                masks.append(batch.masks)
            if batch.head_masks is not None:
                heads.append(batch.head_masks)
            ids += batch.image_ids
            if sum(len(k) for k in kept) < keep_images:
                kept.append(batch.images[: keep_images - sum(len(k) for k in kept)].cpu())
            seen += len(batch.labels)
            if max_images is not None and seen >= max_images:
                break
    if not labels_all:
        raise ValueError("collect_cams got an empty loader: check the split and its size")
    n = min(seen, max_images) if max_images is not None else seen
    return CamSet(
        logits=torch.cat(logits_all)[:n],
        labels=torch.cat(labels_all)[:n],
        cams=np.concatenate(cams)[:n],
        pred_cams=np.concatenate(pred_cams)[:n] if keep_pred_cams else None,
        gt_boxes=gt_boxes[:n],
        masks=np.concatenate(masks)[:n] if len(masks) == len(labels_all) else None,
        head_masks=np.concatenate(heads)[:n] if len(heads) == len(labels_all) else None,
        image_ids=ids[:n] if len(ids) >= n else None,
        images=torch.cat(kept) if kept else None,
    )


@dataclass
class CamBatch:
    """One batch as ``cam_batches`` yields it: what the network said and what the metrics need."""

    images: Tensor
    logits: Tensor  # (B, K), on the CPU
    labels: Tensor  # (B,), on the CPU
    cams: np.ndarray  # (B, H, W) GT-class maps in [0, 1]
    pred_cams: np.ndarray | None  # predicted-class maps, when asked for
    gt_boxes: list[np.ndarray]
    masks: np.ndarray | None
    head_masks: np.ndarray | None
    image_ids: list[str]


def cam_batches(
    model: nn.Module,
    loader: Iterable,
    device: torch.device | str | None = None,
    upsample: str | None = None,
    boxes: str | None = None,
    pred_cams: bool = False,
) -> Iterator[CamBatch]:
    """The one pass over a loader that ``collect_cams`` and ``evaluate_loader`` share: the model in
    eval mode, without gradients, batch by batch (its training mode is restored afterwards)."""
    net = getattr(model, "module", model)
    device = torch.device(device) if device is not None else next(net.parameters()).device
    was_training = net.training
    net.eval().to(device)
    try:
        with torch.no_grad():
            for images, targets in loader:
                yield _cam_batch(net, images.to(device), targets, upsample, boxes, pred_cams)
    finally:
        net.train(was_training)


def _cam_batch(net: nn.Module, images: Tensor, targets: Mapping[str, Any], upsample: str | None,
               boxes: str | None, pred_cams: bool) -> CamBatch:
    size = (images.shape[-2], images.shape[-1])
    mode, convention = resolve_protocol(targets, upsample, boxes)
    features = net.forward_features(images).float()
    logits = _classify(net, features)
    labels = targets["label"].to(images.device)
    masks, heads = targets.get("mask"), targets.get("head_mask")
    return CamBatch(
        images=images, logits=logits.cpu(), labels=labels.cpu(),
        cams=_normalised_cams(net, features, labels, size, mode),
        pred_cams=_normalised_cams(net, features, logits.argmax(1), size, mode) if pred_cams else None,
        gt_boxes=gt_boxes_of_batch(targets, size, convention),
        masks=None if masks is None else torch.as_tensor(masks).bool().cpu().numpy(),
        head_masks=None if heads is None else torch.as_tensor(heads).bool().cpu().numpy(),
        image_ids=list(targets.get("image_id", [])),
    )  # fmt: skip


def _image_shares(cams: np.ndarray, masks: np.ndarray, head_masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image with non-zero CAM mass: (head share, body share) as fractions in [0, 1]."""
    cams = np.asarray(cams, dtype=np.float64)
    head = np.asarray(head_masks, dtype=bool)
    body = np.asarray(masks, dtype=bool) & ~head
    mass = cams.sum(axis=(1, 2))
    ok = mass > 0
    return (cams * head).sum(axis=(1, 2))[ok] / mass[ok], (cams * body).sum(axis=(1, 2))[ok] / mass[ok]


def _mean_shares(head: np.ndarray, body: np.ndarray) -> dict[str, float]:
    if head.size == 0:
        return {"head_share": float("nan"), "body_share": float("nan"), "background_share": float("nan")}
    return {
        "head_share": 100.0 * float(head.mean()),
        "body_share": 100.0 * float(body.mean()),
        "background_share": 100.0 * float((1.0 - head - body).mean()),
    }


def activation_shares(cams: np.ndarray, masks: np.ndarray, head_masks: np.ndarray) -> dict[str, float]:
    """Where the CAM mass goes, in percent, averaged over images (images with zero mass skipped).

    ``head_share = sum(CAM * head) / sum(CAM)``; ``body_share`` uses the object mask minus the head;
    ``background_share`` the rest. The three add up to 100 for each image.
    """
    return _mean_shares(*_image_shares(cams, masks, head_masks))


def _tau_key(tau: float) -> str:
    return f"{round(float(tau), 4):g}"


class SplitMetrics:
    """Accumulates everything ``evaluate`` reports, batch by batch, without keeping the CAMs.

    Built on ``dgdm_lib.metrics``: one ``BoxAccumulator`` over ``cam_thresholds`` (MaxBoxAcc,
    MaxBoxAccV2, GT-known / Top-1 Loc at any tau of the grid, best tau), a
    ``ClassificationLocalization`` for requested taus that are not on the grid, a
    ``PxAPAccumulator`` when masks come, and the head / body / background shares when head masks
    come. Memory per image: two curves of ``len(cam_thresholds)`` floats.
    """

    def __init__(self, taus: Sequence[float] = (0.2,), cam_thresholds: Sequence[float] | np.ndarray = CAM_THRESHOLDS) -> None:
        self.cam_thresholds = np.asarray(cam_thresholds, dtype=np.float64)
        self.taus = tuple(dict.fromkeys(float(t) for t in taus))
        off_grid = [t for t in self.taus if not np.isclose(self.cam_thresholds, t, rtol=0, atol=1e-9).any()]
        self.boxes = BoxAccumulator(self.cam_thresholds, multi_contour=False)
        self.fixed = ClassificationLocalization(off_grid) if off_grid else None
        self.pixels = PxAPAccumulator(self.cam_thresholds)
        self.has_masks: bool | None = None
        self.shares: list[tuple[np.ndarray, np.ndarray]] = []
        self.correct = 0
        self.seen = 0

    def add(
        self,
        logits: Tensor,
        labels: Tensor,
        cams: np.ndarray,
        gt_boxes: Sequence[np.ndarray],
        masks: np.ndarray | None = None,
        head_masks: np.ndarray | None = None,
    ) -> None:
        """One batch: logits (B, K), labels (B,), GT-class CAMs (B, H, W) in [0, 1], inclusive GT
        boxes, and optionally object and head masks (B, H, W)."""
        correct = (logits.argmax(1).cpu() == labels.cpu()).numpy()
        self.boxes.accumulate(cams, gt_boxes, correct=correct)
        if self.fixed is not None:
            self.fixed.accumulate(logits, labels, cams, gt_boxes)
        if self.has_masks is None:
            self.has_masks = masks is not None
        if self.has_masks != (masks is not None):
            raise ValueError("some batches have object masks and some do not: evaluate one dataset at a time")
        if masks is not None:
            self.pixels.accumulate(cams, masks)
            if head_masks is not None:
                self.shares.append(_image_shares(cams, masks, head_masks))
        self.correct += int(correct.sum())
        self.seen += len(correct)

    def result(self) -> dict[str, float]:
        """The flat dict described in ``evaluate``."""
        if self.seen == 0:
            raise ValueError("no images were evaluated: the loader was empty")
        boxes = self.boxes
        best_tau = boxes.best_tau(0.5, multi_contour=False)
        out: dict[str, float] = {"n_images": float(self.seen), "top1_clas": 100.0 * self.correct / self.seen}
        table = self.fixed.compute() if self.fixed is not None else {"gt_known_loc": {}, "top1_loc": {}}
        for t in self.taus:
            if t in table["gt_known_loc"]:
                out[f"gt_known_loc@{_tau_key(t)}"] = table["gt_known_loc"][t]
                out[f"top1_loc@{_tau_key(t)}"] = table["top1_loc"][t]
            else:
                out[f"gt_known_loc@{_tau_key(t)}"] = boxes.accuracy_at(t, 0.5, multi_contour=False)
                out[f"top1_loc@{_tau_key(t)}"] = boxes.accuracy_at(t, 0.5, multi_contour=False, top1=True)
        out["best_tau"] = best_tau
        out["gt_known_loc@best"] = boxes.accuracy_at(best_tau, 0.5, multi_contour=False)
        out["top1_loc@best"] = boxes.accuracy_at(best_tau, 0.5, multi_contour=False, top1=True)
        out["maxboxacc"] = boxes.compute(multi_contour=False)[0.5]
        by_iou = boxes.compute(multi_contour=True)
        out["maxboxacc_v2"] = float(np.mean(list(by_iou.values())))
        out.update({f"maxboxacc_v2@{d:g}": v for d, v in by_iou.items()})
        if self.has_masks:
            out["pxap"] = self.pixels.compute()
        if self.shares:
            out.update(_mean_shares(*(np.concatenate(parts) for parts in zip(*self.shares))))
        return out


def evaluate(
    camset: CamSet,
    tau: float = 0.2,
    cam_thresholds: Sequence[float] | np.ndarray = CAM_THRESHOLDS,
    extra_taus: Sequence[float] = (),
) -> dict[str, float]:
    """All metrics of docs/methods.md, "Metrics" on one split, as a flat dict of percentages.

    Keys: ``n_images``, ``top1_clas``, ``gt_known_loc@<tau>``, ``top1_loc@<tau>`` (for ``tau`` and
    each of ``extra_taus``), ``best_tau`` (maximising GT-known Loc on *this* split, largest region),
    ``gt_known_loc@best``, ``top1_loc@best``, ``maxboxacc`` (IoU 0.5, largest region),
    ``maxboxacc_v2`` (mean over IoU 0.3/0.5/0.7, all regions) with ``maxboxacc_v2@0.3/0.5/0.7``,
    ``pxap`` when masks exist, and ``head_share``/``body_share``/``background_share`` when head
    masks exist (beetles).
    """
    metrics = SplitMetrics((tau, *extra_taus), cam_thresholds)
    for start in range(0, len(camset), 256):
        part = slice(start, start + 256)
        metrics.add(
            camset.logits[part], camset.labels[part], camset.cams[part], camset.gt_boxes[part],
            None if camset.masks is None else camset.masks[part],
            None if camset.head_masks is None else camset.head_masks[part],
        )  # fmt: skip
    return metrics.result()


@torch.no_grad()
def evaluate_loader(
    model: nn.Module,
    loader: Iterable,
    device: torch.device | str | None = None,
    tau: float = 0.2,
    extra_taus: Sequence[float] = (),
    cam_thresholds: Sequence[float] | np.ndarray = CAM_THRESHOLDS,
    upsample: str | None = None,
    boxes: str | None = None,
) -> dict[str, float]:
    """``evaluate(collect_cams(model, loader))`` in one streaming pass: the CAMs of a batch are
    scored and dropped, so memory does not grow with the split (ImageNet-size validation sets).
    ``upsample`` and ``boxes`` as in ``collect_cams``."""
    metrics = SplitMetrics((tau, *extra_taus), cam_thresholds)
    for batch in cam_batches(model, loader, device, upsample, boxes):
        metrics.add(batch.logits, batch.labels, batch.cams, batch.gt_boxes, batch.masks, batch.head_masks)
    return metrics.result()


def evaluate_val_test(
    model: nn.Module,
    val_loader: Iterable,
    test: Iterable | CamSet,
    device: torch.device | str | None = None,
    tau: float = 0.2,
    upsample: str | None = None,
    boxes: str | None = None,
) -> dict[str, Any]:
    """Choose tau on ``val_loader`` (maximising GT-known Loc), report ``test`` at that tau
    and at the paper's fixed ``tau``. ``upsample`` and ``boxes`` as in ``collect_cams``.

    ``test`` is a loader, or the ``CamSet`` that ``collect_cams`` made of it when the caller also
    wants the test maps for figures (the numbers are the same).
    Returns the flat test metrics of ``evaluate`` plus ``tau_val``, ``gt_known_loc@tau_val``,
    ``top1_loc@tau_val``, and the validation metrics under ``val/<key>``.
    """
    protocol = {"upsample": upsample, "boxes": boxes}
    val = evaluate_loader(model, val_loader, device, tau=tau, **protocol)
    tau_val = val["best_tau"]
    if isinstance(test, CamSet):
        test = evaluate(test, tau=tau, extra_taus=[tau_val])
    else:
        test = evaluate_loader(model, test, device, tau=tau, extra_taus=[tau_val], **protocol)
    test["tau_val"] = tau_val
    test["gt_known_loc@tau_val"] = test[f"gt_known_loc@{_tau_key(tau_val)}"]
    test["top1_loc@tau_val"] = test[f"top1_loc@{_tau_key(tau_val)}"]
    test.update({f"val/{k}": v for k, v in val.items()})
    return test
