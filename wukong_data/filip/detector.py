"""A frozen image tower that needs no download: nudenet's detector (`320n.onnx`, a YOLOv8n
fine-tuned on photographs of people, in the nudenet wheel the NSFW rule already installs).

Seven of its internal feature maps (its last backbone and neck blocks, made graph outputs) are
average- and max-pooled, the deepest (SPPF) also over a 2x2 grid, beside its 18 class scores:
3,346 numbers a photo, for the photo and for its mirror image. On Flickr8k-CN these features
let a small head reach ROC-AUC 0.916 where towers trained from scratch on the same photos reach
0.80 (docs/benchmarks.md). A run's features are cached beside it: the tower is frozen, so they
are computed once per photo, not once per epoch.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..images import image_column
from ..storage import atomic_path
from .decode import decode_batch

FEATURE_MAPS = [f"/model.{i}/cv2/act/Mul_output_0" for i in (4, 6, 8, 9, 15, 18, 21)]
DEEPEST = 3  # /model.9 (SPPF): its 2x2 grid joins the pooled maps
INPUT_SIZE = 320


def _square(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) uint8 RGB -> (3, 320, 320) in [0, 1]: padded with black at the bottom and right
    to a square, then resized, as nudenet prepares its input."""
    _, h, w = image.shape
    side = max(h, w)
    square = F.pad(image.float(), (0, side - w, 0, side - h))
    return F.interpolate(square[None], size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)[0] / 255


class DetectorFeatures:
    """Features of images and of their mirror images: (N, 2, width) float32."""

    def __init__(self, threads: int = 0):
        import nudenet
        import onnx
        import onnxruntime as ort

        model = onnx.load(os.path.join(os.path.dirname(nudenet.__file__), "320n.onnx"))
        for name in FEATURE_MAPS:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        available = ort.get_available_providers()  # CUDA where onnxruntime-gpu is installed
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.session = ort.InferenceSession(model.SerializeToString(), options, providers=providers)

    def _features(self, blob: np.ndarray) -> np.ndarray:
        detections, *maps = self.session.run(None, {"images": blob})
        parts = [detections[:, 4:, :].max(axis=2)]
        for m in maps:
            parts += [m.mean(axis=(2, 3)), m.max(axis=(2, 3))]
        deep = maps[DEEPEST]
        b, c, h, w = deep.shape
        parts.append(deep[:, :, :h // 2 * 2, :w // 2 * 2].reshape(b, c, 2, h // 2, 2, w // 2).mean(axis=(3, 5))
                     .reshape(b, -1))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def __call__(self, images: list[torch.Tensor], batch: int = 16) -> np.ndarray:
        out = []
        for start in range(0, len(images), batch):
            part = images[start:start + batch]
            # Both views in one run of the detector (the photos first, then their mirrors).
            blob = torch.stack([_square(i) for i in part] + [_square(i.flip(-1)) for i in part]).cpu().numpy()
            features = self._features(blob)
            out.append(np.stack([features[:len(part)], features[len(part):]], axis=1))
        return np.concatenate(out) if out else np.zeros((0, 2, 0), np.float32)


@dataclass
class FeatureSet:
    """Every sample of some shards: its caption, key, and its image's features (`features[rows[i]]`;
    a photo that recurs with other captions is computed and kept once). float16 on disk and in memory."""
    features: np.ndarray  # (distinct images, 2, width)
    rows: np.ndarray  # (samples,)
    captions: list[str]
    keys: list[str]


def _signature(tars: tuple[str, ...]) -> str:
    """What the cache was computed from: the shards' paths, sizes and modification times."""
    parts = [f"{Path(t).resolve()}:{os.stat(t).st_size}:{os.stat(t).st_mtime_ns}" for t in tars]
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()


def shard_features(tars: tuple[str, ...], cache: Path | None, threads: int = 0, progress=None) -> FeatureSet:
    """The FeatureSet of `tars`, from `cache` (an .npz written whole, last; None: none kept) where
    it was computed from the same shards. A sample whose image cannot be decoded is left out."""
    import webdataset as wds

    signature = _signature(tars)
    if cache and cache.is_file():
        with np.load(cache) as saved:
            if str(saved["signature"]) == signature:
                return FeatureSet(saved["features"], saved["rows"], saved["captions"].tolist(), saved["keys"].tolist())
    detector = DetectorFeatures(threads)
    seen: dict[bytes, int] = {}  # a decoded image's digest -> its row of features
    queued: set[bytes] = set()  # digests sent to the detector or waiting in `pending`
    rows, captions, keys, features, pending = [], [], [], [], []

    def flush():
        decoded = decode_batch([data for _, data in pending], torch.device("cpu"))
        good = [(digest, image) for (digest, _), image in zip(pending, decoded) if image is not None]
        if good:
            features.append(detector([image for _, image in good]).astype(np.float16))
            for digest, _ in good:
                seen[digest] = len(seen)
        pending.clear()

    samples = []
    for sample in wds.DataPipeline(wds.SimpleShardList(list(tars)), wds.tarfile_to_samples()):
        data = sample[image_column(sample, sample["__url__"])]
        digest = hashlib.sha1(data).digest()
        if digest not in queued:
            queued.add(digest)
            pending.append((digest, data))
        samples.append((digest, sample["txt"].decode("utf-8"), sample["__key__"]))
        if len(pending) == 64:
            flush()
            if progress:
                progress(len(samples))
    flush()
    for digest, caption, key in samples:
        if digest in seen:
            rows.append(seen[digest])
            captions.append(caption)
            keys.append(key)
    result = FeatureSet(np.concatenate(features) if features else np.zeros((0, 2, 0), np.float16),
                        np.array(rows, np.int64), captions, keys)
    if cache is None:
        return result
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, signature=np.array(signature), features=result.features, rows=result.rows,
                     captions=np.array(captions, dtype=str), keys=np.array(keys, dtype=str))
    return result


class FeatureBatches:
    """Training batches from a FeatureSet, the trainer's counterpart of data.PixelBatches: each
    epoch a seeded order of the samples and, per sample, the photo or its mirror, so a resumed
    run sees the batches an uninterrupted one would."""

    def __init__(self, data: FeatureSet, tokenizer, batch_size: int, seed: int):
        self.features = torch.from_numpy(data.features)
        self.rows = torch.from_numpy(data.rows)
        self.ids = tokenizer(data.captions)
        self.keys = data.keys
        self.batch_size, self.seed = batch_size, seed

    def per_epoch(self, world: int) -> int:
        return len(self.rows) // self.batch_size

    def epoch(self, epoch: int, rank: int, world: int, skip_batches: int):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.rows), generator=generator)
        views = torch.randint(0, 2, (len(self.rows),), generator=generator)
        for b in range(skip_batches, self.per_epoch(world)):
            batch = order[b * self.batch_size:(b + 1) * self.batch_size]
            images = self.features[self.rows[batch], views[batch]][:, None].float()
            yield images, self.ids[batch], [self.keys[i] for i in batch]


def every_sample(data: FeatureSet, tokenizer, batch_size: int):
    """Every sample once, in shard order, both views: for evaluation."""
    for start in range(0, len(data.rows), batch_size):
        rows = data.rows[start:start + batch_size]
        yield (torch.from_numpy(data.features[rows]).float(), tokenizer(data.captions[start:start + batch_size]),
               data.keys[start:start + batch_size])
