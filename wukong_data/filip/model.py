"""FILIP: open_clip's ViT and text transformer with token outputs, projected to a small shared
width and L2-normalised; optional Wukong token reduction and locked image tower (LiT).

With `loss = "clip"` each side keeps only its pooled (class) token: a sequence of one token, so
the late interaction, the loss, retrieval and scoring are CLIP's cosine similarity unchanged."""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from open_clip.model import CLIPTextCfg, CLIPVisionCfg, _build_text_tower, _build_vision_tower
from torch import nn

from .presets import FilipConfig
from .tokenizer import PAD_ID


class TokenReduction(nn.Module):
    """Wukong's token reduction: k learned attention maps pool the patch grid into k tokens."""

    def __init__(self, width: int, k: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.maps = nn.Linear(width, k)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        weights = self.maps(self.norm(tokens)).softmax(dim=1)  # (B, n, k): each map sums to 1 over patches
        return torch.einsum("bnk,bnd->bkd", weights, tokens)


class FILIP(nn.Module):
    def __init__(self, cfg: FilipConfig):
        super().__init__()
        self.cfg = cfg
        vision = CLIPVisionCfg(layers=cfg.vision_layers, width=cfg.vision_width, head_width=cfg.vision_width //
                               cfg.vision_heads, image_size=cfg.image_size, patch_size=cfg.patch_size,
                               output_tokens=True)
        text = CLIPTextCfg(context_length=cfg.context_length, vocab_size=cfg.vocab_size, width=cfg.text_width,
                           heads=cfg.text_heads, layers=cfg.text_layers, output_tokens=True, no_causal_mask=True,
                           pad_id=PAD_ID, pool_type="first")
        self.visual = _build_vision_tower(cfg.token_dim, vision)
        self.text = _build_text_tower(cfg.token_dim, text)
        self.text.use_pad_mask = True  # bidirectional attention that ignores padding
        # Only the tokens are used: drop the towers' pooled-output projections.
        self.visual.proj = None
        self.text.text_projection = None
        self.reduce = (TokenReduction(cfg.vision_width, cfg.reduced_tokens)
                       if cfg.reduced_tokens and cfg.loss == "filip" else None)
        self.image_proj = nn.Linear(cfg.vision_width, cfg.token_dim)
        self.text_proj = nn.Linear(cfg.text_width, cfg.token_dim)
        self.logit_scale = nn.Parameter(torch.tensor(cfg.init_logit_scale))
        if cfg.lock_image_tower:
            for p in self.visual.parameters():
                p.requires_grad_(False)

    def image_inputs(self, images: list[torch.Tensor]) -> torch.Tensor:
        """Decoded (3, H, W) uint8 RGB images -> the normalised batch the towers read: the
        shorter side resized to the model's size, the centre cropped (as evaluation loads them)."""
        size, device = self.cfg.image_size, self.logit_scale.device
        mean = torch.tensor(self.cfg.mean, device=device)[:, None, None]
        std = torch.tensor(self.cfg.std, device=device)[:, None, None]
        return torch.stack([(TF.center_crop(TF.resize(image.to(device), size, antialias=True), size).float() / 255
                             - mean) / std for image in images])

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, n1, token_dim) normalised image tokens (class token dropped); CLIP: (B, 1, token_dim)."""
        pooled, tokens = self.visual(images)
        if self.cfg.loss == "clip":
            tokens = pooled[:, None]
        elif self.reduce is not None:
            tokens = self.reduce(tokens)
        return F.normalize(self.image_proj(tokens), dim=-1)

    def encode_text(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n2, token_dim) normalised text tokens and the (B, n2) mask of real tokens; CLIP: the
        pooled token, (B, 1, token_dim), and a mask of ones."""
        pooled, tokens = self.text(ids)
        if self.cfg.loss == "clip":
            return F.normalize(self.text_proj(pooled[:, None]), dim=-1), torch.ones_like(ids[:, :1], dtype=torch.bool)
        return F.normalize(self.text_proj(tokens), dim=-1), ids != PAD_ID

    def forward(self, images: torch.Tensor, ids: torch.Tensor):
        """Image tokens, text tokens, text mask (one call, so DDP sees the forward pass)."""
        return (self.encode_image(images), *self.encode_text(ids))

    def clamp_logit_scale(self) -> None:
        with torch.no_grad():
            self.logit_scale.clamp_(0, self.cfg.max_logit_scale)
