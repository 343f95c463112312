"""Users' own pretrained CLIP models, loaded from weights on local disk (nothing is downloaded):
open_clip's (any model name it knows, or local-dir:PATH) and Chinese-CLIP's (the `cn_clip`
package's checkpoints, e.g. clip_cn_vit-b-16.pt). Each loader gives the model with
encode_image/encode_text, its image transform (PIL -> tensor) and its tokenizer (list -> ids)."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

# Chinese-CLIP's released architectures: name -> (vision tower, text tower, input resolution),
# as its README's model table gives them.
CN_CLIP_MODELS = {
    "RN50": ("RN50", "RBT3-chinese", 224),
    "ViT-B-16": ("ViT-B-16", "RoBERTa-wwm-ext-base-chinese", 224),
    "ViT-L-14": ("ViT-L-14", "RoBERTa-wwm-ext-base-chinese", 224),
    "ViT-L-14-336": ("ViT-L-14-336", "RoBERTa-wwm-ext-base-chinese", 336),
    "ViT-H-14": ("ViT-H-14", "RoBERTa-wwm-ext-large-chinese", 224),
}


def load_open_clip(model_name: str, weights: Path, device):
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(
        model_name, pretrained=str(weights), device=device, load_weights=True)
    return model, preprocess, open_clip.get_tokenizer(model_name)


def load_cn_clip(model_name: str, weights: Path, device):
    """A Chinese-CLIP checkpoint as its own training writes it ({"state_dict": ...}, keys with or
    without DDP's "module." prefix); fp32 on the CPU, its fp16 on a GPU, as cn_clip loads it."""
    from cn_clip.clip import load_from_name, tokenize

    vision, text, resolution = CN_CLIP_MODELS[model_name]
    with contextlib.redirect_stdout(io.StringIO()):  # it prints each config it reads
        model, preprocess = load_from_name(str(weights), device=device, vision_model_name=vision,
                                           text_model_name=text, input_resolution=resolution)
    return model, preprocess, tokenize


LOADERS = {"open_clip": load_open_clip, "cn_clip": load_cn_clip}
