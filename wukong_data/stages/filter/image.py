"""Image rules: size and aspect from the crawl's metadata (no decoding), a real decode check of
the kept bytes (Pillow, after the header check of images.py), and an NSFW score from nudenet's
320n.onnx."""
from __future__ import annotations

import functools
import io
import os

import numpy as np
from PIL import Image

from ...images import decodable_size

# Exposed-body classes of nudenet's detector; the NSFW score of an image is the best of them.
_EXPOSED = ("BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED",
            "ANUS_EXPOSED")


def decodes(data: bytes | None) -> bool:
    """True when Pillow decodes the whole image; truncated files fail, and an image whose header
    declares more than MAX_PIXELS (a decompression bomb) is refused without decoding."""
    if not decodable_size(data):
        return False
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        return True
    except Exception:  # noqa: BLE001 - any decoder error means the bytes are unusable
        return False


class NsfwScorer:
    """Batched nudenet detector on onnxruntime (CUDA when available, else CPU).

    Scores follow nudenet's own reading of its detector: each anchor box belongs to its best
    class, and a class's score in an image is its best anchor's. `threads` is onnxruntime's
    intra-op thread count: what the engine granted this worker (0: onnxruntime's default).
    """

    def __init__(self, threads: int = 0):
        import nudenet
        import onnxruntime as ort
        from nudenet import nudenet as detector

        self._read = detector._read_image  # nudenet's own letterbox + normalisation
        self.labels: list[str] = list(detector.__dict__["__labels"])
        self.exposed = np.array([self.labels.index(c) for c in _EXPOSED])
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        model = os.path.join(os.path.dirname(nudenet.__file__), "320n.onnx")
        self.session = ort.InferenceSession(model, options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name

    def class_scores(self, images: list[bytes], batch_size: int = 32) -> np.ndarray:
        """(images, classes): each class's best anchor score, counting an anchor for its best class only."""
        out = np.zeros((len(images), len(self.labels)), dtype=np.float32)
        for start in range(0, len(images), batch_size):
            blobs = [self._read(img, 320)[0] for img in images[start:start + batch_size]]
            (pred,) = self.session.run(None, {self.input_name: np.concatenate(blobs)})
            classes = pred[:, 4:, :]  # (batch, classes, anchors); rows 0-3 are the box
            best = classes.max(axis=1, keepdims=True)
            own = np.where(classes == best, classes, 0.0)  # an anchor counts for its argmax class
            out[start:start + len(blobs)] = own.max(axis=2)
        return out

    def scores(self, images: list[bytes], batch_size: int = 32) -> np.ndarray:
        """The NSFW score per image: its best exposed-body class score."""
        return self.class_scores(images, batch_size)[:, self.exposed].max(axis=1)


@functools.lru_cache(maxsize=1)
def nsfw_scorer() -> NsfwScorer:
    from ...engines import granted_threads

    return NsfwScorer(granted_threads())
