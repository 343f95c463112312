"""FILIP's token-wise late interaction and its contrastive loss.

Image i to text j: for each image token, its best dot product over the text's real tokens,
averaged over image tokens. Text j to image i: for each real text token, its best dot product
over image tokens, averaged over the real text tokens. Tokens are L2-normalised.

The full (B, B, n1, n2) similarity tensor is never held: queries are taken `chunk` at a time
under activation checkpointing, so memory is bounded by chunk x B x n1 x n2 while values and
gradients are those of the direct formula.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def _i2t_block(img: torch.Tensor, txt: torch.Tensor, txt_mask: torch.Tensor) -> torch.Tensor:
    sim = torch.einsum("qnd,kmd->qknm", img, txt)
    sim = sim.masked_fill(~txt_mask[None, :, None, :], float("-inf"))
    return sim.amax(dim=-1).mean(dim=-1)


def _t2i_block(txt: torch.Tensor, txt_mask: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    best = torch.einsum("qmd,knd->qkmn", txt, img).amax(dim=-1)  # (q, k, m)
    mask = txt_mask[:, None, :].to(best.dtype)
    return (best * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def _chunked(fn, queries: tuple, keys: tuple, chunk: int) -> torch.Tensor:
    n = queries[0].shape[0]
    if chunk <= 0 or chunk >= n:
        return fn(*queries, *keys)
    parts = []
    for start in range(0, n, chunk):
        block = tuple(q[start:start + chunk] for q in queries)
        if torch.is_grad_enabled():
            parts.append(checkpoint(fn, *block, *keys, use_reentrant=False))
        else:
            parts.append(fn(*block, *keys))
    return torch.cat(parts)


def image_to_text(img: torch.Tensor, txt: torch.Tensor, txt_mask: torch.Tensor, chunk: int = 0) -> torch.Tensor:
    """(Bi, Bt) token-wise similarity of each image to each text."""
    return _chunked(_i2t_block, (img,), (txt, txt_mask), chunk)


def text_to_image(txt: torch.Tensor, txt_mask: torch.Tensor, img: torch.Tensor, chunk: int = 0) -> torch.Tensor:
    """(Bt, Bi) token-wise similarity of each text to each image."""
    return _chunked(lambda t, m, i: _t2i_block(t, m, i), (txt, txt_mask), (img,), chunk)


def pair_scores(img: torch.Tensor, txt: torch.Tensor, txt_mask: torch.Tensor) -> torch.Tensor:
    """(B,) similarity of each image with its own caption: (image->text + text->image) / 2.
    Linear in the number of pairs, for scoring a dataset."""
    sim = torch.einsum("bnd,bmd->bnm", img, txt)
    i2t = sim.masked_fill(~txt_mask[:, None, :], float("-inf")).amax(-1).mean(-1)
    mask = txt_mask.to(sim.dtype)
    t2i = (sim.amax(1) * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return (i2t + t2i) / 2


def filip_loss(img: torch.Tensor, txt: torch.Tensor, txt_mask: torch.Tensor, logit_scale: torch.Tensor,
               all_img: torch.Tensor | None = None, all_txt: torch.Tensor | None = None,
               all_mask: torch.Tensor | None = None, offset: int = 0, label_smoothing: float = 0.0,
               chunk: int = 0) -> torch.Tensor:
    """InfoNCE in both directions over token-wise similarities.

    img (b, n1, d), txt (b, n2, d), txt_mask (b, n2): this process's pairs. all_*: every
    process's pairs (gathered; this process's at rows offset..offset+b); None on one process.
    """
    all_img = img if all_img is None else all_img
    all_txt = txt if all_txt is None else all_txt
    all_mask = txt_mask if all_mask is None else all_mask
    scale = logit_scale.exp()
    labels = torch.arange(img.shape[0], device=img.device) + offset
    logits_i2t = scale * image_to_text(img, all_txt, all_mask, chunk)
    logits_t2i = scale * text_to_image(txt, txt_mask, all_img, chunk)
    return (F.cross_entropy(logits_i2t, labels, label_smoothing=label_smoothing)
            + F.cross_entropy(logits_t2i, labels, label_smoothing=label_smoothing)) / 2


def top_tokens(img: torch.Tensor, txt: torch.Tensor, txt_mask: torch.Tensor, fraction: float):
    """FILIP's communication saving: each image keeps the `fraction` of its tokens with the best
    similarity to any local text token, each text the `fraction` of its real tokens with the
    best similarity to any local image token. Returns reduced img, txt, txt_mask."""
    with torch.no_grad():
        sim = torch.einsum("ind,jmd->injm", img, txt).masked_fill(~txt_mask[None, None], float("-inf"))
        img_score = sim.amax(dim=(2, 3))  # (Bi, n1)
        txt_score = sim.amax(dim=(0, 1)).masked_fill(~txt_mask, float("-inf"))  # (Bt, n2)
    k1 = max(1, round(img.shape[1] * fraction))
    k2 = max(1, round(txt.shape[1] * fraction))
    keep_img = img_score.topk(k1, dim=1).indices
    keep_txt = txt_score.topk(k2, dim=1).indices
    img = img.gather(1, keep_img[..., None].expand(-1, -1, img.shape[-1]))
    new_mask = txt_mask.gather(1, keep_txt)
    txt = txt.gather(1, keep_txt[..., None].expand(-1, -1, txt.shape[-1]))
    return img, txt, new_mask
