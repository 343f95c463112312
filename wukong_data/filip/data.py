"""Batches of (images, token ids) from a build's final/ WebDataset shards.

Deterministic and resumable: the shard order of an epoch comes from (seed, epoch); each rank
and loader worker takes a fixed slice of it; samples are shuffled in a buffer seeded by
(seed, epoch, rank, worker); each sample's augmentation is seeded by its key. A resumed run
skips the raw samples already consumed, before any decoding, and sees exactly the batches an
uninterrupted run would have seen. Horizontal flips are off: captions name left and right.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass

import torch
import torchvision.transforms.functional as TF
import webdataset as wds
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..images import image_column
from .tokenizer import ChineseTokenizer


@dataclass(frozen=True)
class LoaderSpec:
    tars: tuple[str, ...]
    sizes: tuple[int, ...]
    vocab_file: str
    context_length: int
    image_size: int
    mean: tuple
    std: tuple
    batch_size: int
    workers: int
    seed: int
    train: bool  # augment and shuffle
    shuffle_buffer: int = 1000


def captions(tars: tuple[str, ...]) -> list[str]:
    """Every caption (the .txt members) of the shards, for training a vocabulary."""
    return [s["txt"].decode("utf-8") for s in wds.DataPipeline(wds.SimpleShardList(list(tars)),
                                                                wds.tarfile_to_samples()) if "txt" in s]


def _assignment(spec: LoaderSpec, epoch: int, rank: int, world: int) -> list[list[int]]:
    """Shard indices per loader worker of this rank for this epoch."""
    order = list(range(len(spec.tars)))
    if spec.train:
        random.Random(spec.seed * 1_000_003 + epoch).shuffle(order)
    mine = order[rank::world]
    n_workers = max(1, spec.workers)
    return [mine[w::n_workers] for w in range(n_workers)]


def batches_per_epoch(spec: LoaderSpec, world: int) -> int:
    """Batches every rank yields in an epoch: each worker gives the same count, so the loader's
    round-robin over workers is exact (and resumable); ranks agree (DDP)."""
    per_rank = []
    for rank in range(world):
        workers = _assignment(spec, 0, rank, world)
        per_rank.append(len(workers) * min(sum(spec.sizes[i] for i in w) // spec.batch_size for w in workers))
    return min(per_rank)


def _transform(image: Image.Image, spec: LoaderSpec, key: str, epoch: int) -> torch.Tensor:
    image = image.convert("RGB")
    if spec.train:
        rng = random.Random(f"{spec.seed}/{epoch}/{key}")
        w, h = image.size
        scale, ratio = rng.uniform(0.8, 1.0), rng.uniform(0.9, 1.1)
        cw = min(w, int(round((scale * w * h * ratio) ** 0.5)))
        ch = min(h, int(round((scale * w * h / ratio) ** 0.5)))
        top, left = rng.randint(0, h - ch), rng.randint(0, w - cw)
        image = TF.resized_crop(image, top, left, ch, cw, [spec.image_size, spec.image_size], antialias=True)
    else:
        image = TF.center_crop(TF.resize(image, spec.image_size, antialias=True), spec.image_size)
    return TF.normalize(TF.to_tensor(image), spec.mean, spec.std)


class EpochBatches(IterableDataset):
    def __init__(self, spec: LoaderSpec, epoch: int, rank: int, world: int, skip_batches: int):
        self.spec, self.epoch, self.rank, self.world, self.skip_batches = spec, epoch, rank, world, skip_batches

    def __iter__(self):
        spec = self.spec
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        shard_ids = _assignment(spec, self.epoch, self.rank, self.world)[worker]
        quota = batches_per_epoch(spec, self.world) // n_workers
        # The loader takes batches round-robin from its workers: this worker's share of those consumed.
        skip = len(range(worker, self.skip_batches, n_workers))
        tokenizer = ChineseTokenizer(spec.vocab_file, spec.context_length)
        stages = [wds.SimpleShardList([spec.tars[i] for i in shard_ids]), wds.tarfile_to_samples()]
        if spec.train:
            rng = random.Random(f"{spec.seed}/{self.epoch}/{self.rank}/{worker}")
            stages.append(wds.shuffle(spec.shuffle_buffer, initial=spec.shuffle_buffer, rng=rng))
        samples = iter(wds.DataPipeline(*stages))
        for _ in range(skip * spec.batch_size):  # raw samples: nothing decoded
            next(samples)
        for _ in range(quota - skip):
            yield _collate([next(samples) for _ in range(spec.batch_size)], spec, tokenizer, self.epoch)


def loader(spec: LoaderSpec, epoch: int, rank: int = 0, world: int = 1, skip_batches: int = 0) -> DataLoader:
    return DataLoader(EpochBatches(spec, epoch, rank, world, skip_batches), batch_size=None,
                      num_workers=spec.workers, persistent_workers=False)


class PixelBatches:
    """The training batches of a LoaderSpec, epoch by epoch (detector.FeatureBatches is the
    frozen-detector model's counterpart)."""

    def __init__(self, spec: LoaderSpec):
        self.spec = spec

    def per_epoch(self, world: int) -> int:
        return batches_per_epoch(self.spec, world)

    def epoch(self, epoch: int, rank: int, world: int, skip_batches: int) -> DataLoader:
        return loader(self.spec, epoch, rank, world, skip_batches)


def every_sample(spec: LoaderSpec):
    """Every sample once, in shard order, in batches (the last may be short): for evaluation."""
    tokenizer = ChineseTokenizer(spec.vocab_file, spec.context_length)
    raw_batch = []
    for sample in wds.DataPipeline(wds.SimpleShardList(list(spec.tars)), wds.tarfile_to_samples()):
        raw_batch.append(sample)
        if len(raw_batch) == spec.batch_size:
            yield _collate(raw_batch, spec, tokenizer)
            raw_batch = []
    if raw_batch:
        yield _collate(raw_batch, spec, tokenizer)


def _collate(raw: list[dict], spec: LoaderSpec, tokenizer: ChineseTokenizer, epoch: int = 0):
    images = torch.stack([_transform(Image.open(io.BytesIO(s[image_column(s, s["__url__"])])), spec, s["__key__"], epoch)
                          for s in raw])
    return images, tokenizer([s["txt"].decode("utf-8") for s in raw]), [s["__key__"] for s in raw]
