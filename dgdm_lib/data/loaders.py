"""Batches in the book's format, and the fast in-memory beetles loader for CPU training.

Every loader yields ``(images, targets)``: images float (B, 3, H, W), normalised for the network;
targets a dict with "label" LongTensor (B,), "boxes" a list of B float tensors (k_i, 4) in XYXY
pixel-edge coordinates of ``images``, and when the dataset has them "mask" and "head_mask"
(B, H, W) bool and "image_id" (list of str). Real-photo datasets add "source_boxes" and
"source_size" (the annotation as read and the image's (h, w)), for the reference evaluator's box
conversion (docs/methods.md, "Box conventions").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from dgdm_lib.data.beetles import BeetlesArrays, BeetlesConfig, load_beetles
from dgdm_lib.data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize
from dgdm_lib.distributed import distributed_info

Batch = tuple[torch.Tensor, dict[str, Any]]


def _plain(x: Any) -> torch.Tensor:
    """A tv_tensor (Image, Mask, BoundingBoxes) as a plain tensor, so batches carry no metadata."""
    return torch.as_tensor(x).as_subclass(torch.Tensor)


def collate_wsol(batch: Sequence[tuple[Any, dict[str, Any]]]) -> Batch:
    """List of dataset items ``(image, target)`` -> one batch in the book's format (see module doc)."""
    images, targets = zip(*batch)
    shapes = {tuple(image.shape) for image in images}
    if len(shapes) > 1:
        raise ValueError(
            f"collate_wsol needs images of one size, got {sorted(shapes)}: give the dataset a transform that "
            "resizes, e.g. transform=standard_transforms(train=False)"
        )
    out: dict[str, Any] = {
        "label": torch.tensor([int(t["label"]) for t in targets], dtype=torch.long),
        "boxes": [_plain(t["boxes"]).float().reshape(-1, 4) for t in targets],
    }
    for key in ("mask", "head_mask"):
        if all(key in t for t in targets):
            out[key] = torch.stack([_plain(t[key]).bool() for t in targets])
    if all("image_id" in t for t in targets):
        out["image_id"] = [str(t["image_id"]) for t in targets]
    if all("source_boxes" in t and "source_size" in t for t in targets):
        out["source_boxes"] = [t["source_boxes"] for t in targets]
        out["source_size"] = [tuple(t["source_size"]) for t in targets]
    return torch.stack([_plain(image) for image in images]), out


def make_loader(
    dataset: Dataset,
    batch_size: int = 64,
    shuffle: bool = False,
    num_workers: int = 0,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """A ``DataLoader`` over any of the book's datasets, batching with ``collate_wsol``."""
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
        generator=generator, drop_last=drop_last, collate_fn=collate_wsol,
    )


class BeetlesTensors:
    """A beetles split held in memory as tensors (uint8 images, bool masks, pixel-edge boxes).

    ``batch(indices, flip)`` builds one batch in the book's format: images are normalised on the
    fly and ``flip`` (B,) bool mirrors images, masks and boxes together.
    """

    def __init__(self, arrays: BeetlesArrays, split: str = "", device: torch.device | str | None = None,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        device = torch.device(device) if device is not None else torch.device("cpu")
        self.split = split
        self.images = torch.from_numpy(arrays.images).permute(0, 3, 1, 2).contiguous().to(device)
        self.labels = torch.from_numpy(arrays.labels).to(device)
        self.masks = torch.from_numpy(arrays.masks).to(device)
        self.head_masks = torch.from_numpy(arrays.head_masks).to(device)
        self.boxes = torch.from_numpy(arrays.edge_boxes()).to(device)
        self.mean, self.std = tuple(mean), tuple(std)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])

    def batch(self, indices: torch.Tensor, flip: torch.Tensor | None = None) -> Batch:
        """Images ``indices`` as one batch; ``flip`` (B,) bool flips those samples horizontally."""
        indices = torch.as_tensor(indices, dtype=torch.long, device=self.images.device)
        images, masks, heads = self.images[indices], self.masks[indices], self.head_masks[indices]
        boxes = self.boxes[indices].clone()
        if flip is not None and bool(flip.any()):
            flip = flip.to(self.images.device)
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
            masks = torch.where(flip[:, None, None], masks.flip(-1), masks)
            heads = torch.where(flip[:, None, None], heads.flip(-1), heads)
            width = self.images.shape[-1]
            mirrored = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)
            boxes = torch.where(flip[:, None], mirrored, boxes)
        targets = {
            "label": self.labels[indices],
            "boxes": list(boxes.unsqueeze(1).unbind(0)),
            "mask": masks,
            "head_mask": heads,
            "image_id": [f"{self.split}/{int(i):05d}" for i in indices.tolist()],
        }
        return normalize(images, self.mean, self.std), targets

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        images, targets = self.batch(torch.tensor([index]))
        return images[0], {
            "label": int(targets["label"][0]), "boxes": targets["boxes"][0], "mask": targets["mask"][0],
            "head_mask": targets["head_mask"][0], "image_id": targets["image_id"][0],
        }


def epoch_draws(n: int, seed: int, epoch: int, shuffle: bool = True,
                hflip: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The order and the flips of pass ``epoch`` (from 0) over ``n`` samples: a function of
    ``(seed, epoch)`` alone, the one sampler of the in-memory loaders.

    A generator seeded with ``seed`` draws each pass in turn (a permutation of ``n``, then ``n``
    coin flips), so pass ``epoch`` is its ``epoch + 1``-th draw; replaying the earlier passes costs
    microseconds for the book's few thousand images and makes any epoch reproducible on its own
    (resuming, or every rank of a distributed run). ``flips`` is None without ``hflip``.
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    generator = torch.Generator().manual_seed(int(seed))
    order, flips = torch.arange(n), None
    for _ in range(epoch + 1):
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        flips = torch.rand(n, generator=generator) < 0.5 if hflip else None
    return order, flips


class BeetlesLoader:
    """Iterates a ``BeetlesTensors`` in batches, in the order and with the flips of ``epoch_draws``.

    ``set_epoch(e)`` (which ``training.train`` calls) picks the pass; without it each new pass over
    the loader takes the next epoch, so two passes never repeat their order.
    """

    def __init__(self, tensors: BeetlesTensors, batch_size: int = 64, shuffle: bool = False, hflip: bool = False,
                 seed: int = 0, drop_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = tensors
        self.batch_size, self.shuffle, self.hflip, self.drop_last = batch_size, shuffle, hflip, drop_last
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        order, flips = epoch_draws(len(self.dataset), self.seed, self.epoch, self.shuffle, self.hflip)
        self.epoch += 1
        for k in range(len(self)):
            chunk = slice(k * self.batch_size, (k + 1) * self.batch_size)
            yield self.dataset.batch(order[chunk], None if flips is None else flips[chunk])


def beetles_loader(
    split: str = "train",
    batch_size: int = 64,
    shuffle: bool | None = None,
    hflip: bool | None = None,
    seed: int = 0,
    config: BeetlesConfig | None = None,
    root: Path | str | None = None,
    base_seed: int = 0,
    size: int | None = None,
    device: torch.device | str | None = None,
    drop_last: bool = False,
) -> BeetlesLoader:
    """The fast path for CPU training: a beetles split kept in memory, batched without a DataLoader.

    ``shuffle`` and ``hflip`` default to True for "train" and False otherwise; the order and flips
    of each epoch follow from ``seed`` (``epoch_draws``). ``device`` moves the whole split there once.
    """
    train = split == "train"
    arrays = load_beetles(split, config, root, base_seed, size)
    tensors = BeetlesTensors(arrays, split=split, device=device)
    return BeetlesLoader(
        tensors, batch_size=batch_size, shuffle=train if shuffle is None else shuffle,
        hflip=train if hflip is None else hflip, seed=seed, drop_last=drop_last,
    )


class DistributedBatches:
    """Shards an in-memory split across ranks, batch by batch, for ``torchrun`` runs.

    ``tensors`` is anything with ``len()`` and ``batch(indices, flip) -> (images, targets)``
    (``BeetlesTensors``). Every epoch all ranks take the same order and flips, ``epoch_draws(seed,
    epoch)`` as ``BeetlesLoader`` (call ``set_epoch``, as with ``DistributedSampler``), pad it to a
    multiple of ``world_size`` by repeating its start, and take every ``world_size``-th index; with
    one rank the batches are ``BeetlesLoader``'s.
    """

    def __init__(
        self, tensors: Any, batch_size: int, shuffle: bool = True, hflip: bool = True,
        seed: int = 0, rank: int | None = None, world_size: int | None = None,
    ) -> None:  # fmt: skip
        info = distributed_info()
        self.dataset = tensors
        self.batch_size, self.shuffle, self.hflip, self.seed = batch_size, shuffle, hflip, seed
        self.rank = info.rank if rank is None else rank
        self.world_size = info.world_size if world_size is None else world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _per_rank(self) -> int:
        return (len(self.dataset) + self.world_size - 1) // self.world_size

    def __len__(self) -> int:
        return (self._per_rank() + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.dataset)
        order, flips = epoch_draws(n, self.seed, self.epoch, self.shuffle, self.hflip)
        flips = flips if flips is not None else torch.zeros(n, dtype=torch.bool)
        padded = self._per_rank() * self.world_size
        order = torch.cat([order, order[: padded - n]])
        flips = torch.cat([flips, flips[: padded - n]])
        mine, my_flips = order[self.rank :: self.world_size], flips[self.rank :: self.world_size]
        for start in range(0, len(mine), self.batch_size):
            yield self.dataset.batch(mine[start : start + self.batch_size], my_flips[start : start + self.batch_size])
