"""WSOL metrics (docs/methods.md, "Metrics"): Top-1 Clas, GT-known Loc, Top-1 Loc, MaxBoxAcc(V2) and PxAP.

All numbers are percentages. CAMs are normalised maps in [0, 1] (``dgdm_lib.cam.normalize_cams``);
GT boxes are inclusive integer pixel boxes ``x0, y0, x1, y1`` in the CAM's frame
(``dgdm_lib.localization.edges_to_inclusive`` converts dataset boxes).

The box metrics and PxAP reproduce the reference evaluator of "Evaluating WSOL Methods Right"
(Choe et al., ``wsolevaluation``) exactly: same boxes (see ``dgdm_lib.localization``), an image
counts as correct when the best IoU between its predicted boxes and any GT box is ``>= d``,
MaxBoxAcc is the best accuracy over the CAM thresholds, and PxAP is the reference's histogram
recipe for the area under the pixel precision-recall curve.

Two ways to use them: functions over a whole split (``max_box_acc``, ``pxap``, ``gt_known_loc``...)
or accumulators fed batch by batch (``BoxAccumulator``, ``PxAPAccumulator``,
``ClassificationLocalization``) with ``accumulate(...)`` and ``compute()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from torch import Tensor

from dgdm_lib.localization import box_iou, quantize_cam, region_boxes, threshold_binaries

__all__ = [
    "CAM_THRESHOLDS",
    "BoxAccumulator",
    "ClassificationLocalization",
    "PxAPAccumulator",
    "best_ious_at_thresholds",
    "gt_known_loc",
    "max_box_acc",
    "max_box_acc_v2",
    "pxap",
    "top1_clas",
    "top1_loc",
]

CAM_THRESHOLDS = np.arange(0, 1, 0.01)
IOU_THRESHOLDS = (0.3, 0.5, 0.7)

CamBatch = Tensor | np.ndarray | Sequence[np.ndarray]


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------
def _maps(cams: CamBatch) -> list[np.ndarray]:
    """A batch of CAMs ((B, H, W) tensor/array, or a sequence of (H, W) maps) as float64 arrays."""
    if isinstance(cams, Tensor):
        cams = cams.detach().cpu().numpy()
    if isinstance(cams, np.ndarray):
        if cams.ndim == 2:
            raise ValueError(f"expected a batch of CAMs (B, H, W), got one map {cams.shape}: wrap it as cams[None]")
        if cams.ndim != 3:
            raise ValueError(f"expected CAMs of shape (B, H, W), got {cams.shape}")
    return [np.asarray(cam.detach().cpu() if isinstance(cam, Tensor) else cam, dtype=np.float64) for cam in cams]


def _gt_list(gt_boxes: Iterable, count: int) -> list[np.ndarray]:
    boxes = [np.asarray(b.detach().cpu() if isinstance(b, Tensor) else b).reshape(-1, 4) for b in gt_boxes]
    if len(boxes) != count:
        raise ValueError(f"need one (k, 4) array of GT boxes per CAM: {count} CAMs, {len(boxes)} box arrays")
    for i, b in enumerate(boxes):
        if len(b) == 0:
            raise ValueError(f"image {i} of the batch has no GT box: every evaluated image needs at least one")
    return boxes


def _labels(values: Tensor | np.ndarray | Sequence[int]) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values).reshape(-1)


def _predictions(logits_or_predictions: Tensor | np.ndarray | Sequence[int]) -> np.ndarray:
    """Top-1 classes from logits (B, K), or class indices (B,) passed through."""
    values = logits_or_predictions
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    return values.argmax(axis=1) if values.ndim == 2 else values.reshape(-1)


def _percent(count: np.ndarray | float, total: int) -> np.ndarray | float:
    if total == 0:
        raise ValueError("no images accumulated: call accumulate(...) with at least one batch first")
    return np.asarray(count, dtype=np.float64) * 100.0 / float(total)


def _tau_index(thresholds: np.ndarray, tau: float) -> int:
    close = np.flatnonzero(np.isclose(thresholds, tau, rtol=0.0, atol=1e-9))
    if close.size == 0:
        raise ValueError(
            f"tau={tau} is not one of this accumulator's cam_thresholds "
            f"({thresholds[:3].tolist()} ... {thresholds[-1]}): add it to cam_thresholds"
        )
    return int(close[0])


# --------------------------------------------------------------------------------------------
# Boxes: best IoU per CAM threshold, image by image
# --------------------------------------------------------------------------------------------
def best_ious_at_thresholds(
    cam: Tensor | np.ndarray, gt_boxes: np.ndarray, cam_thresholds: Sequence[float] | np.ndarray = CAM_THRESHOLDS
) -> tuple[np.ndarray, np.ndarray]:
    """For one CAM (H, W), the best IoU with any GT box (k, 4) at each threshold ``tau``.

    Returns ``(largest, all_regions)``, two (T,) arrays: the IoU of the largest region's box, and the
    best IoU over the boxes of all regions (multi-contour). Each foreground map is processed once.
    """
    binaries, index = threshold_binaries(cam, cam_thresholds)
    found = [region_boxes(binary) for binary in binaries]
    boxes = np.concatenate([b for b, _ in found])
    starts = np.cumsum([0] + [len(b) for b, _ in found[:-1]])
    best_per_box = box_iou(boxes, gt_boxes).max(axis=1)
    all_regions = np.maximum.reduceat(best_per_box, starts)
    largest = best_per_box[starts + np.array([i for _, i in found])]
    return largest[index], all_regions[index]


class BoxAccumulator:
    """Box accuracy per CAM threshold, batch by batch: MaxBoxAcc, MaxBoxAccV2, GT-known Loc, best tau.

    For every image it keeps the best IoU at each threshold ``tau`` for both the largest region and
    all regions, so one pass serves every IoU threshold ``d`` and both contour modes.

    Args:
        cam_thresholds: the taus swept (reference: ``np.arange(0, 1, 0.01)``).
        iou_thresholds: the ``d`` of MaxBoxAcc(d), reported by ``compute()``.
        multi_contour: default contour mode: True (all regions, MaxBoxAccV2) or False (largest region).

    Example::

        acc = BoxAccumulator(multi_contour=False)
        for cams, gt_boxes in batches:
            acc.accumulate(cams, gt_boxes)
        acc.compute()[0.5]   # MaxBoxAcc
    """

    def __init__(
        self,
        cam_thresholds: Sequence[float] | np.ndarray = CAM_THRESHOLDS,
        iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
        multi_contour: bool = True,
    ) -> None:
        self.cam_thresholds = np.asarray(cam_thresholds, dtype=np.float64).reshape(-1)
        if self.cam_thresholds.size == 0 or (self.cam_thresholds < 0).any() or (self.cam_thresholds > 1).any():
            raise ValueError(f"cam_thresholds must be a non-empty sequence of taus in [0, 1], got {cam_thresholds}")
        self.iou_thresholds = tuple(float(d) for d in iou_thresholds)
        if not self.iou_thresholds or any(not 0.0 <= d <= 1.0 for d in self.iou_thresholds):
            raise ValueError(f"iou_thresholds must be IoU values in [0, 1], got {iou_thresholds}")
        self.multi_contour = bool(multi_contour)
        self._largest: list[np.ndarray] = []
        self._all: list[np.ndarray] = []
        self._correct: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._largest)

    def accumulate(
        self, cams: CamBatch, gt_boxes: Sequence, correct: Sequence[bool] | np.ndarray | Tensor | None = None
    ) -> None:
        """Add a batch: ``cams`` (B, H, W) in [0, 1], ``gt_boxes`` B arrays (k_i, 4) inclusive, and
        optionally ``correct`` (B,), whether each image's top-1 class is right (for Top-1 Loc)."""
        maps = _maps(cams)
        boxes = _gt_list(gt_boxes, len(maps))
        flags = None
        if correct is not None:
            flags = _labels(correct).astype(bool)
            if flags.size != len(maps):
                raise ValueError(f"correct needs one flag per CAM: {len(maps)} CAMs, {flags.size} flags")
        if (flags is None) != (not self._correct) and len(self) > 0:
            raise ValueError("pass `correct` flags for every batch or for none, from the first batch on")
        for cam, gt in zip(maps, boxes):
            largest, all_regions = best_ious_at_thresholds(cam, gt, self.cam_thresholds)
            self._largest.append(largest)
            self._all.append(all_regions)
        if flags is not None:
            self._correct.append(flags)

    def best_ious(self, multi_contour: bool | None = None) -> np.ndarray:
        """(N, T): per image, the best IoU at each CAM threshold."""
        rows = self._all if (self.multi_contour if multi_contour is None else multi_contour) else self._largest
        if not rows:
            raise ValueError("no images accumulated: call accumulate(...) with at least one batch first")
        return np.stack(rows)

    def accuracy_curve(
        self, iou_threshold: float = 0.5, multi_contour: bool | None = None, top1: bool = False
    ) -> np.ndarray:
        """(T,) percent of images whose best IoU is ``>= iou_threshold``, at each CAM threshold.

        ``top1=True`` also requires the correct class (Top-1 Loc); needs ``correct`` flags.
        """
        hits = self.best_ious(multi_contour) >= iou_threshold
        if top1:
            if not self._correct:
                raise ValueError("Top-1 Loc needs the `correct` flags: pass correct=... to accumulate()")
            hits &= np.concatenate(self._correct)[:, None]
        return _percent(hits.sum(axis=0), len(hits))

    def accuracy_at(
        self, tau: float, iou_threshold: float = 0.5, multi_contour: bool | None = None, top1: bool = False
    ) -> float:
        """Percent correct at one CAM threshold ``tau`` (one of ``cam_thresholds``): GT-known Loc at
        ``tau`` with the largest region, or Top-1 Loc with ``top1=True``."""
        return float(self.accuracy_curve(iou_threshold, multi_contour, top1)[_tau_index(self.cam_thresholds, tau)])

    def best_tau(self, iou_threshold: float = 0.5, multi_contour: bool | None = None) -> float:
        """The CAM threshold with the highest box accuracy (the first one among ties)."""
        return float(self.cam_thresholds[int(np.argmax(self.accuracy_curve(iou_threshold, multi_contour)))])

    def compute(self, multi_contour: bool | None = None) -> dict[float, float]:
        """MaxBoxAcc(d) in percent for each ``d`` of ``iou_thresholds``: the best accuracy over taus."""
        return {d: float(self.accuracy_curve(d, multi_contour).max()) for d in self.iou_thresholds}

    def max_box_acc_v2(self) -> float:
        """MaxBoxAccV2: the mean of MaxBoxAcc(d) over ``iou_thresholds`` with all regions."""
        return float(np.mean(list(self.compute(multi_contour=True).values())))


def max_box_acc(
    cams: CamBatch,
    gt_boxes: Sequence,
    cam_thresholds: Sequence[float] | np.ndarray = CAM_THRESHOLDS,
    iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
    multi_contour: bool = True,
) -> dict[float, float]:
    """MaxBoxAcc(d) = max over tau of the share of images whose best box IoU is ``>= d``, in percent.

    Args:
        cams: N maps (H, W) in [0, 1] (or an (N, H, W) array).
        gt_boxes: N int arrays (k, 4), inclusive ``x0, y0, x1, y1`` in the CAM's frame.
        cam_thresholds: the taus swept.
        iou_thresholds: the ``d`` values; keys of the result.
        multi_contour: all regions (MaxBoxAccV2's setting) or the largest region only.
    """
    accumulator = BoxAccumulator(cam_thresholds, iou_thresholds, multi_contour)
    accumulator.accumulate(cams, gt_boxes)
    return accumulator.compute()


def max_box_acc_v2(
    cams: CamBatch, gt_boxes: Sequence, cam_thresholds: Sequence[float] | np.ndarray = CAM_THRESHOLDS
) -> float:
    """MaxBoxAccV2: mean of MaxBoxAcc(d) over d in {0.3, 0.5, 0.7}, all regions, in percent."""
    return float(np.mean(list(max_box_acc(cams, gt_boxes, cam_thresholds, IOU_THRESHOLDS, True).values())))


# --------------------------------------------------------------------------------------------
# Classification and localization at fixed taus (the paper's protocol)
# --------------------------------------------------------------------------------------------
def top1_clas(logits_or_predictions: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> float:
    """Top-1 Clas: percent of images whose top-1 class (argmax of logits (N, K), or given (N,)) is right."""
    predictions, labels = _predictions(logits_or_predictions), _labels(labels)
    if predictions.shape != labels.shape:
        raise ValueError(f"need one prediction per label: {predictions.shape[0]} predictions, {labels.shape[0]} labels")
    return float(_percent((predictions == labels).sum(), labels.size))


def gt_known_loc(cams: CamBatch, gt_boxes: Sequence, tau: float = 0.2, iou_threshold: float = 0.5) -> float:
    """GT-known Loc: percent of images whose largest-region box at ``tau`` of the GT-class CAM has
    IoU ``>= iou_threshold`` with a GT box."""
    accumulator = BoxAccumulator([tau], [iou_threshold], multi_contour=False)
    accumulator.accumulate(cams, gt_boxes)
    return accumulator.accuracy_at(tau, iou_threshold)


def top1_loc(
    cams: CamBatch,
    gt_boxes: Sequence,
    logits_or_predictions: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    tau: float = 0.2,
    iou_threshold: float = 0.5,
) -> float:
    """Top-1 Loc: percent of images with the right top-1 class AND a GT-known Loc hit at ``tau``.

    With a right prediction the predicted-class CAM is the GT-class CAM, so GT-class ``cams`` suffice.
    """
    correct = _predictions(logits_or_predictions) == _labels(labels)
    accumulator = BoxAccumulator([tau], [iou_threshold], multi_contour=False)
    accumulator.accumulate(cams, gt_boxes, correct=correct)
    return accumulator.accuracy_at(tau, iou_threshold, top1=True)


class ClassificationLocalization:
    """Top-1 Clas, and GT-known Loc and Top-1 Loc at given taus, batch by batch (the paper's table).

    Args:
        taus: CAM thresholds to report (the paper: 0.2).
        iou_threshold: IoU needed for a hit (0.5).

    ``compute()`` returns ``{"top1_clas": x, "gt_known_loc": {tau: x}, "top1_loc": {tau: x}}``.
    """

    def __init__(self, taus: Sequence[float] = (0.2,), iou_threshold: float = 0.5) -> None:
        self.taus = tuple(float(t) for t in taus)
        self.iou_threshold = float(iou_threshold)
        self._boxes = BoxAccumulator(self.taus, (self.iou_threshold,), multi_contour=False)
        self._correct = 0
        self._seen = 0

    def __len__(self) -> int:
        return self._seen

    def accumulate(
        self,
        logits_or_predictions: Tensor | np.ndarray,
        labels: Tensor | np.ndarray,
        cams: CamBatch,
        gt_boxes: Sequence,
    ) -> None:
        """Add a batch: logits (B, K) or predicted classes (B,), labels (B,), GT-class CAMs
        (B, H, W) in [0, 1] and B arrays of inclusive GT boxes (k_i, 4)."""
        predictions, labels = _predictions(logits_or_predictions), _labels(labels)
        if predictions.shape != labels.shape:
            raise ValueError(f"need one prediction per label: {predictions.size} predictions, {labels.size} labels")
        correct = predictions == labels
        self._boxes.accumulate(cams, gt_boxes, correct=correct)
        self._correct += int(correct.sum())
        self._seen += int(labels.size)

    def compute(self) -> dict[str, float | dict[float, float]]:
        """Percentages: ``top1_clas``, and ``gt_known_loc`` / ``top1_loc`` keyed by tau."""
        gt_known = self._boxes.accuracy_curve(self.iou_threshold, multi_contour=False)
        top1 = self._boxes.accuracy_curve(self.iou_threshold, multi_contour=False, top1=True)
        return {
            "top1_clas": float(_percent(self._correct, self._seen)),
            "gt_known_loc": {tau: float(v) for tau, v in zip(self.taus, gt_known)},
            "top1_loc": {tau: float(v) for tau, v in zip(self.taus, top1)},
        }


# --------------------------------------------------------------------------------------------
# PxAP
# --------------------------------------------------------------------------------------------
class PxAPAccumulator:
    """PxAP, batch by batch: histograms of CAM scores over object and background pixels.

    Bins are ``[tau_0, tau_1), ..., [tau_last, 1), [1, 2), [2, 3]``, as the reference evaluator.
    Masks: 1 (or True) marks object pixels, 0 background; 255 marks pixels to ignore (the
    reference's convention); any other value is an error.
    """

    def __init__(self, cam_thresholds: Sequence[float] | np.ndarray = CAM_THRESHOLDS) -> None:
        self.cam_thresholds = np.asarray(cam_thresholds, dtype=np.float64).reshape(-1)
        self.bin_edges = np.append(self.cam_thresholds, [1.0, 2.0, 3.0])
        if (np.diff(self.bin_edges) <= 0).any():
            raise ValueError(f"cam_thresholds must increase strictly and stay below 1, got {cam_thresholds}")
        self.object_hist = np.zeros(len(self.bin_edges) - 1, dtype=np.float64)
        self.background_hist = np.zeros(len(self.bin_edges) - 1, dtype=np.float64)

    def accumulate(self, cams: CamBatch, masks: Tensor | np.ndarray | Sequence[np.ndarray]) -> None:
        """Add a batch of CAMs (B, H, W) in [0, 1] and their object masks (B, H, W)."""
        maps = _maps(cams)
        if isinstance(masks, Tensor):
            masks = masks.detach().cpu().numpy()
        if len(masks) != len(maps):
            raise ValueError(f"need one mask per CAM: {len(maps)} CAMs, {len(masks)} masks")
        objects, backgrounds = [], []
        for i, (cam, mask) in enumerate(zip(maps, masks)):
            mask = np.asarray(mask.detach().cpu() if isinstance(mask, Tensor) else mask)
            if mask.shape != cam.shape:
                raise ValueError(
                    f"mask {i} has shape {mask.shape} but its CAM has {cam.shape}: resize one to the other"
                )
            mask = mask.astype(np.uint8)
            if not np.isin(mask, (0, 1, 255)).all():
                raise ValueError(
                    f"mask {i} has values {np.unique(mask)[:6].tolist()}: use 0 background, 1 object, 255 ignore"
                )
            quantize_cam(cam)  # range and NaN checks
            objects.append(cam[mask == 1])
            backgrounds.append(cam[mask == 0])
        self.object_hist += np.histogram(np.concatenate(objects), bins=self.bin_edges)[0]
        self.background_hist += np.histogram(np.concatenate(backgrounds), bins=self.bin_edges)[0]

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """Precision and recall (both (T + 3,)), from the highest bin down, as the reference.

        Precision is NaN where nothing is predicted positive."""
        tp = self.object_hist[::-1].cumsum()
        fn = self.object_hist.sum() - tp
        fp = self.background_hist[::-1].cumsum()
        if self.object_hist.sum() <= 0:
            raise ValueError("no object pixels accumulated: PxAP needs masks with object pixels (value 1)")
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = tp / (tp + fp)
        return precision, tp / (tp + fn)

    def compute(self) -> float:
        """PxAP in percent: ``sum_i precision_i * (recall_i - recall_{i-1})`` over non-empty thresholds."""
        precision, recall = self.curve()
        predicted = (self.object_hist[::-1].cumsum() + self.background_hist[::-1].cumsum()) != 0
        return float((precision[1:] * np.diff(recall))[predicted[1:]].sum() * 100)


def pxap(
    cams: CamBatch,
    masks: Tensor | np.ndarray | Sequence[np.ndarray],
    cam_thresholds: Sequence[float] | np.ndarray = CAM_THRESHOLDS,
) -> float:
    """PxAP: area under the pixel precision-recall curve of CAM scores against object masks, in percent.

    Args:
        cams: N maps (H, W) in [0, 1].
        masks: N masks (H, W): 1/True object, 0 background, 255 ignored.
        cam_thresholds: the score thresholds of the curve.
    """
    accumulator = PxAPAccumulator(cam_thresholds)
    accumulator.accumulate(cams, masks)
    return accumulator.compute()
