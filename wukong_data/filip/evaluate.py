"""Evaluation: image<->text retrieval R@1/5/10 and the pair score's ROC-AUC on held-out shards,
and zero-shot classification with Chinese prompt templates and FILIP's prompt ensembling
(token-wise similarities averaged over templates)."""
from __future__ import annotations

from pathlib import Path

import torch

from . import detector
from .data import LoaderSpec, every_sample
from .lit import LitNudenet
from .shards import shards
from .loss import image_to_text, text_to_image
from .model import FILIP
from .tokenizer import ChineseTokenizer

TEMPLATES = ("一张{}的图片", "{}的照片", "图中是{}", "一幅{}的画")


@torch.no_grad()
def encode(model: FILIP | LitNudenet, data_dir: str | Path, vocab_file: str | Path, batch_size: int = 64,
           cache: Path | None = None):
    """Image tokens, text tokens and masks of every sample of a build's final/ shards (`cache`:
    where lit-nudenet keeps the detector's features of them)."""
    tars, sizes = shards(data_dir)
    cfg = model.cfg
    if isinstance(model, LitNudenet):
        tokenizer = ChineseTokenizer(vocab_file, cfg.context_length)
        batches = detector.every_sample(detector.shard_features(tars, cache, torch.get_num_threads()), tokenizer,
                                        batch_size)
    else:
        batches = every_sample(LoaderSpec(tars, sizes, str(vocab_file), cfg.context_length, cfg.image_size, cfg.mean,
                                          cfg.std, batch_size, workers=0, seed=0, train=False))
    device = next(model.parameters()).device
    imgs, txts, masks = [], [], []
    for images, ids, _ in batches:
        img, txt, mask = model(images.to(device), ids.to(device))
        imgs.append(img.float()), txts.append(txt.float()), masks.append(mask)
    return torch.cat(imgs), torch.cat(txts), torch.cat(masks)


def _recall(sim: torch.Tensor, ks=(1, 5, 10)) -> dict:
    """Row i's correct column is i."""
    rank = (sim > sim.diagonal()[:, None]).sum(1)  # how many columns beat the right one
    return {f"r@{k}": round((rank < k).float().mean().item(), 4) for k in ks}


@torch.no_grad()
def retrieval(model: FILIP | LitNudenet, data_dir: str | Path, vocab_file: str | Path, batch_size: int = 64,
              chunk: int = 16, cache: Path | None = None) -> dict:
    img, txt, mask = encode(model, data_dir, vocab_file, batch_size, cache)
    i2t = image_to_text(img, txt, mask, chunk)
    t2i = text_to_image(txt, mask, img, chunk)
    n = len(img)
    return {"n": n, "chance_r@1": round(1 / n, 4),
            "image_to_text": _recall(i2t), "text_to_image": _recall(t2i),
            "pair_roc_auc": _pair_auc((i2t + t2i.T) / 2)}


def _pair_auc(scores: torch.Tensor) -> float:
    """The model as the score stage uses it: the ROC-AUC of each image's own caption against every
    other caption of the set (P(own pair outscores a mismatched one), ties half), from the pair
    scores of every image (rows) with every text. Over all n(n-1) mismatches, so it does not
    depend on which other caption a photo is given (one such draw of 1,000 varies by ~0.005)."""
    n = len(scores)
    own = scores.diagonal().contiguous()
    others = scores[~torch.eye(n, dtype=torch.bool, device=scores.device)].sort().values
    below = torch.searchsorted(others, own, right=False) + torch.searchsorted(others, own, right=True)
    return round(float(below.double().sum() / (2 * n * len(others))), 4)


@torch.no_grad()
def zero_shot(model: FILIP, images: torch.Tensor, classes: list[str], tokenizer: ChineseTokenizer,
              templates=TEMPLATES, chunk: int = 16) -> torch.Tensor:
    """Class index per image: the class whose prompts match best, averaged over templates."""
    device = next(model.parameters()).device
    img = model.encode_image(images.to(device))
    scores = torch.zeros(len(images), len(classes), device=device)
    for template in templates:
        txt, mask = model.encode_text(tokenizer([template.format(c) for c in classes]).to(device))
        scores += (image_to_text(img, txt, mask, chunk) + text_to_image(txt, mask, img, chunk).T) / 2
    return (scores / len(templates)).argmax(dim=1)
