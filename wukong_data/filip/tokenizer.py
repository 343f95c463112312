"""Chinese BERT-style tokenisation: each Han character a token, [CLS] ... [SEP], padded to 32.

The vocabulary is a BERT `vocab.txt` (e.g. the 21128-entry bert-base-chinese one) or is trained
from the training captions with Hugging Face `tokenizers` (WordPiece, offline).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

import torch
from tokenizers import BertWordPieceTokenizer

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD_ID = 0


class ChineseTokenizer:
    def __init__(self, vocab_file: str | Path, context_length: int = 32):
        self.vocab_file = str(vocab_file)
        self.context_length = context_length
        self._tok = BertWordPieceTokenizer(self.vocab_file, handle_chinese_chars=True, lowercase=True,
                                           strip_accents=False)
        if self._tok.token_to_id("[PAD]") != PAD_ID:
            raise ValueError(f"{vocab_file}: [PAD] must be the first vocabulary entry")
        self._tok.enable_truncation(context_length)
        self._tok.enable_padding(length=context_length, pad_id=PAD_ID, pad_token="[PAD]")

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def __call__(self, texts: list[str]) -> torch.Tensor:
        """(len(texts), context_length) token ids; 0 is padding."""
        return torch.tensor([e.ids for e in self._tok.encode_batch(list(texts))], dtype=torch.long)

    def tokens(self, text: str) -> list[str]:
        return [t for t in self._tok.encode(text).tokens if t != "[PAD]"]

    @staticmethod
    def train(captions: Iterable[str], out_dir: str | Path, vocab_size: int = 8000) -> Path:
        """Train a WordPiece vocabulary on captions; returns the written vocab.txt."""
        tok = BertWordPieceTokenizer(handle_chinese_chars=True, lowercase=True, strip_accents=False)
        tok.train_from_iterator(captions, vocab_size=vocab_size, min_frequency=1, special_tokens=SPECIAL,
                                show_progress=False)  # its own bars would print between ours
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".vocab-") as tmp:
            tok.save_model(tmp)
            os.replace(Path(tmp) / "vocab.txt", out_dir / "vocab.txt")  # whole, or not at all
        return out_dir / "vocab.txt"
