"""Model shapes. `tiny` trains on a CPU in minutes; the others are shaped like Wukong's FILIP."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class FilipConfig:
    image_size: int = 64
    patch_size: int = 8
    vision_width: int = 128
    vision_layers: int = 3
    vision_heads: int = 4
    text_width: int = 128
    text_layers: int = 3
    text_heads: int = 4
    context_length: int = 32
    vocab_size: int = 0  # set from the tokenizer
    token_dim: int = 64  # shared width of the projected, L2-normalised tokens
    reduced_tokens: int = 0  # Wukong's token reduction: 12 (ViT-B), 24 (ViT-L); 0 keeps every patch
    lock_image_tower: bool = False  # LiT: train the text side against a frozen image tower
    # "filip": every image and text token takes part (late interaction). "clip": the same towers,
    # each side pooled to one token (the class token), so the similarity is CLIP's cosine.
    loss: str = "filip"
    init_logit_scale: float = 2.659  # ln(1 / 0.07)
    max_logit_scale: float = 4.6052  # ln(100)
    mean: tuple = (0.48145466, 0.4578275, 0.40821073)
    std: tuple = (0.26862954, 0.26130258, 0.27577711)

    def to_dict(self) -> dict:
        return asdict(self)


LOSSES = ("filip", "clip")
# The frozen-detector model (lit.py): not a preset of the towers above, one vector a side.
LIT_MODEL = "lit-nudenet"

PRESETS = {
    "tiny": FilipConfig(),
    "vit-b-32": FilipConfig(image_size=224, patch_size=32, vision_width=768, vision_layers=12, vision_heads=12,
                            text_width=512, text_layers=12, text_heads=8, token_dim=256, reduced_tokens=12),
    "vit-l-14": FilipConfig(image_size=224, patch_size=14, vision_width=1024, vision_layers=24, vision_heads=16,
                            text_width=768, text_layers=12, text_heads=12, token_dim=256, reduced_tokens=24),
}
MODELS = (*PRESETS, LIT_MODEL)
# What a run uses where the user does not say. lit-nudenet's dropout, learning rate and batch size
# were chosen on 1,000 of the Flickr8k-CN train photos held out from 5,000 (docs/benchmarks.md).
RUN_DEFAULTS = {"loss": "filip", "lr": 5e-4, "batch_size": 64}
LIT_RUN_DEFAULTS = {"loss": "clip", "lr": 2e-3, "batch_size": 256}
