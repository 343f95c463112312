"""Batched pair scoring with a `wukong train-reference` model (FILIP, CLIP or lit-nudenet):
(image->text + text->image) / 2 of each pair's own token-wise similarity (a cosine where each
side is one vector), so the cost is linear in rows. Images are decoded by format, a batch
at a time (decode_batch: JPEGs together through torchvision's decode_jpeg, on the GPU when
scoring there; other formats per image on the CPU); bf16 on CUDA."""
from __future__ import annotations

import io
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ...engines import granted_threads
from ...storage import local_copy, path
from ...filip.checkpoint import VOCAB, load_model
from ...images import decodable_size
from ...filip.decode import decode_batch
from ...filip.loss import pair_scores
from ...filip.tokenizer import ChineseTokenizer
from .pretrained import LOADERS


def _device(setting: str) -> torch.device:
    """The recipe's device; "auto" is whatever the engine placed this worker on (a GPU it was
    given, else the CPU, with the threads it was given)."""
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cpu" and granted_threads():
        torch.set_num_threads(granted_threads())
    return torch.device(setting)


def _local(location: str | Path) -> Path:
    """A checkpoint or weights file as a local path: a copy, made once, of one on object storage."""
    return local_copy(path(location), Path(tempfile.gettempdir()) / "wukong-models")


class Scorer:
    def __init__(self, checkpoint: str | Path, device: str = "auto", batch_size: int = 64):
        checkpoint = _local(checkpoint)
        self.device = _device(device)
        self.model = load_model(checkpoint, self.device.type)
        cfg = self.model.cfg
        self.tokenizer = ChineseTokenizer(Path(checkpoint) / VOCAB, cfg.context_length)
        self.batch_size = batch_size

    @torch.no_grad()
    def score(self, images: list[bytes], captions: list[str]) -> np.ndarray:
        out = np.full(len(images), math.nan, dtype=np.float32)
        for start in range(0, len(images), self.batch_size):
            decoded = decode_batch(images[start:start + self.batch_size], self.device)
            rows = [start + i for i, t in enumerate(decoded) if t is not None]
            if not rows:
                continue
            batch = self.model.image_inputs([t for t in decoded if t is not None])
            ids = self.tokenizer([captions[i] for i in rows]).to(self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                img, txt, mask = self.model(batch, ids)
            out[rows] = pair_scores(img.float(), txt.float(), mask).cpu().numpy()
        return out


class ClipScorer:
    """A global CLIP score (cosine of pooled embeddings) from a user's own pretrained model:
    `library` is "open_clip" or "cn_clip" (pretrained.py), its weights on local disk."""

    def __init__(self, library: str, model_name: str, weights: str | Path, device: str = "auto", batch_size: int = 64):
        self.device = _device(device)
        self.model, self.preprocess, self.tokenizer = LOADERS[library](model_name, _local(weights), self.device)
        self.model.eval()
        self.batch_size = batch_size

    @torch.no_grad()
    def score(self, images: list[bytes], captions: list[str]) -> np.ndarray:
        out = np.full(len(images), math.nan, dtype=np.float32)
        for start in range(0, len(images), self.batch_size):
            rows, batch = [], []
            for i in range(start, min(start + self.batch_size, len(images))):
                if not decodable_size(images[i]):
                    continue
                try:
                    with Image.open(io.BytesIO(images[i])) as image:
                        batch.append(self.preprocess(image.convert("RGB")))
                    rows.append(i)
                except Exception:  # noqa: BLE001 - an undecodable image gets no score
                    continue
            if not rows:
                continue
            img = self.model.encode_image(torch.stack(batch).to(self.device))
            txt = self.model.encode_text(self.tokenizer([captions[i] for i in rows]).to(self.device))
            out[rows] = F.cosine_similarity(img.float(), txt.float(), dim=-1).cpu().numpy()
        return out
