"""Images decoded for the models, the same way where they are trained and where they score:
(3, H, W) uint8 RGB tensors, JPEGs of a batch together (on the GPU through nvJPEG when there)."""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from ..images import decodable_size

_JPEG_MAGIC = b"\xff\xd8\xff"


def _decode_on_cpu(data: bytes) -> torch.Tensor | None:
    """(3, H, W) uint8 RGB by torchvision, then Pillow for what it cannot read; None if neither can."""
    from torchvision.io import ImageReadMode, decode_image

    try:
        return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except Exception:  # noqa: BLE001 - a format or variant torchvision lacks: try Pillow
        pass
    try:
        with Image.open(io.BytesIO(data)) as image:
            return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
    except Exception:  # noqa: BLE001 - undecodable: the row gets no score
        return None


def decode_batch(images: list[bytes], device: torch.device) -> list[torch.Tensor | None]:
    """Each image as a (3, H, W) uint8 RGB tensor on `device`, or None where it cannot be decoded
    (or declares more than MAX_PIXELS). JPEGs are decoded together in one decode_jpeg call (on a
    GPU, nvJPEG: several times faster than one call per image); if that call fails (one bad
    image fails the whole call), each JPEG is retried alone on the CPU, like the other formats."""
    from torchvision.io import ImageReadMode, decode_jpeg

    out: list[torch.Tensor | None] = [None] * len(images)
    safe = [i for i, data in enumerate(images) if data and decodable_size(data)]
    jpegs = [i for i in safe if images[i].startswith(_JPEG_MAGIC)]
    if jpegs:
        try:
            raw = [torch.frombuffer(bytearray(images[i]), dtype=torch.uint8) for i in jpegs]
            for i, tensor in zip(jpegs, decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)):
                out[i] = tensor
        except Exception:  # noqa: BLE001 - fall back to one image at a time
            pass
    for i in safe:
        if out[i] is None:
            tensor = _decode_on_cpu(images[i])
            out[i] = tensor.to(device) if tensor is not None else None
    return out
