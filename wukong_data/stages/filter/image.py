"""Image rules: size and aspect from the crawl's metadata (no decoding), a real decode check of
the kept bytes (Pillow, decompression-bomb guard on), and an NSFW score from nudenet's 320n.onnx."""
from __future__ import annotations

import functools
import io
import os
import warnings

import numpy as np
from PIL import Image

# Exposed-body classes of nudenet's detector; the NSFW score of an image is the best of them.
_EXPOSED = ("BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED",
            "ANUS_EXPOSED")


def decodes(data: bytes | None) -> bool:
    """True when Pillow decodes the whole image; truncated files and decompression bombs fail."""
    if not data:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
        return True
    except Exception:  # noqa: BLE001 - any decoder error means the bytes are unusable
        return False


class NsfwScorer:
    """Batched nudenet detector on onnxruntime (CUDA when available, else CPU)."""

    def __init__(self):
        import nudenet
        import onnxruntime as ort
        from nudenet import nudenet as detector

        self._read = detector._read_image  # nudenet's own letterbox + normalisation
        labels = detector.__dict__["__labels"]
        self.exposed = np.array([labels.index(c) for c in _EXPOSED])
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("WUKONG_ORT_THREADS", "1"))
        model = os.path.join(os.path.dirname(nudenet.__file__), "320n.onnx")
        self.session = ort.InferenceSession(model, options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name

    def scores(self, images: list[bytes], batch_size: int = 32) -> np.ndarray:
        out = np.zeros(len(images), dtype=np.float32)
        for start in range(0, len(images), batch_size):
            blobs = [self._read(img, 320)[0] for img in images[start:start + batch_size]]
            (pred,) = self.session.run(None, {self.input_name: np.concatenate(blobs)})
            # pred: (batch, 4 box values + classes, anchors); best exposed-class score per image.
            out[start:start + len(blobs)] = pred[:, 4:, :][:, self.exposed, :].max(axis=(1, 2))
        return out


@functools.lru_cache(maxsize=1)
def nsfw_scorer() -> NsfwScorer:
    return NsfwScorer()
