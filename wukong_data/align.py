"""`wukong align`: FILIP's word-patch localisation as pictures, so a curator sees why a pair
scored as it did. For each caption token, the image patches whose tokens match it best."""
from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageDraw, ImageFont

from .build import check_keys
from .errors import UserError
from .filip.checkpoint import VOCAB, load_model
from .filip.tokenizer import ChineseTokenizer
from .images import image_column, undecodable_reason
from .loaders import scan_parquet
from .storage import create_folder

_FONTS = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
          "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", "/System/Library/Fonts/PingFang.ttc",
          "C:/Windows/Fonts/msyh.ttc")
PANEL = 160


def _font(path: str | None, size: int = 18):
    for candidate in ([path] if path else []) + list(_FONTS):
        if candidate and Path(candidate).exists():
            return ImageFont.truetype(candidate, size), True
    return ImageFont.load_default(), False


@torch.no_grad()
def token_patches(model, tokenizer: ChineseTokenizer, image: Image.Image, caption: str, top: int = 3) -> list[dict]:
    """Per real caption token ([CLS]/[SEP] excluded): its best patches (row-major indices in the
    model's patch grid) and their similarities."""
    cfg = model.cfg
    x = TF.center_crop(TF.resize(image.convert("RGB"), cfg.image_size, antialias=True), cfg.image_size)
    x = TF.normalize(TF.to_tensor(x), cfg.mean, cfg.std)[None]
    ids = tokenizer([caption])
    img = model.encode_image(x)[0]  # (n1, d)
    txt, mask = model.encode_text(ids)
    sim = txt[0] @ img.T  # (n2, n1)
    if model.reduce is not None:
        # Reduced tokens are attention-weighted sums of patches: score patches through the maps.
        _, patches = model.visual(x)
        maps = model.reduce.maps(model.reduce.norm(patches)).softmax(dim=1)[0]  # (patches, k)
        sim = sim @ maps.T
    # A patch's similarity to this token beyond its similarity to the caption's other tokens:
    # what ties the patch to the word, rather than to the whole caption.
    real = [i for i, t in enumerate(tokenizer.tokens(caption)) if t not in ("[CLS]", "[SEP]") and mask[0, i]]
    sim = sim - sim[real].mean(dim=0, keepdim=True)
    tokens = tokenizer.tokens(caption)
    out = []
    for position, token in enumerate(tokens):
        if token in ("[CLS]", "[SEP]") or not mask[0, position]:
            continue
        best = sim[position].topk(min(top, sim.shape[1]))
        out.append({"token": token, "position": position, "patches": best.indices.tolist(),
                    "similarity": [round(v, 4) for v in best.values.tolist()]})
    return out


def render(image: Image.Image, tokens: list[dict], grid: int, font_path: str | None = None) -> Image.Image:
    """The image, then one panel per token with its best patches outlined (best in red)."""
    font, cjk = _font(font_path)
    side = min(image.size)
    base = TF.center_crop(image.convert("RGB"), side).resize((PANEL, PANEL))
    cell = PANEL / grid
    cols = min(8, len(tokens) + 1)
    rows = -(-(len(tokens) + 1) // cols)
    sheet = Image.new("RGB", (cols * PANEL, rows * (PANEL + 26)), "white")
    sheet.paste(base, (0, 26))
    ImageDraw.Draw(sheet).text((4, 4), "image", fill="black", font=font)
    for n, entry in enumerate(tokens, start=1):
        panel = base.copy()
        draw = ImageDraw.Draw(panel)
        for rank, patch in enumerate(entry["patches"]):
            r, c = divmod(patch, grid)
            box = (c * cell, r * cell, (c + 1) * cell - 1, (r + 1) * cell - 1)
            draw.rectangle(box, outline="red" if rank == 0 else "orange", width=3 if rank == 0 else 2)
        x, y = (n % cols) * PANEL, (n // cols) * (PANEL + 26)
        sheet.paste(panel, (x, y + 26))
        label = entry["token"] if cjk or entry["token"].isascii() else f"#{entry['position']}"
        ImageDraw.Draw(sheet).text((x + 4, y + 4), label, fill="black", font=font)
    return sheet


def align(build_dir: str | Path, checkpoint: str | Path, keys: list[str], out: str | Path, top: int = 3,
          font: str | None = None) -> list[Path]:
    """Write OUT/KEY.png (and KEY.json: tokens, best patches, similarities) for each key."""
    check_keys(pl.Series(keys, dtype=pl.String), "--keys")  # each names a file in OUT
    model = load_model(checkpoint)
    if model.cfg.loss == "clip":
        raise UserError(f"--checkpoint {checkpoint}: a model with one vector a side (--loss clip, or "
                        "lit-nudenet), so no word has patches of its own; align pictures need a FILIP model")
    tokenizer = ChineseTokenizer(Path(checkpoint) / VOCAB, model.cfg.context_length)
    shards = scan_parquet(build_dir)
    image = image_column(shards.collect_schema().names(), f"{build_dir}: final Parquet shards")
    rows = shards.filter(pl.col("key").is_in(keys)).select("key", "caption", image).collect()
    missing = sorted(set(keys) - set(rows["key"]))
    if missing:
        raise UserError(f"{build_dir}: keys not in the exported shards: {', '.join(missing[:5])}")
    grid = model.cfg.image_size // model.cfg.patch_size
    out = Path(out)
    create_folder(out)
    written = []
    for key, caption, data in rows.iter_rows():
        refused = undecodable_reason(data)
        if refused:
            raise UserError(f"{build_dir}: key {key}: {refused}")
        image = Image.open(io.BytesIO(data))
        tokens = token_patches(model, tokenizer, image, caption, top)
        render(image, tokens, grid, font).save(out / f"{key}.png")
        (out / f"{key}.json").write_text(json.dumps({"key": key, "caption": caption, "grid": grid,
                                                     "tokens": tokens}, ensure_ascii=False, indent=2))
        written.append(out / f"{key}.png")
    return written
