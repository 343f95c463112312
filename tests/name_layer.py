"""Builds the filter's two name networks (wukong_data/stages/filter/name_layer.npz and
name_screen.npz) from public text and our own labels.

The layer reads LAC's BiGRU output and tag scores for each character (names.LacEncoder) and
gives the probability that the character is in a person name. It is trained on:
- Wukong release captions and Product1M titles whose names were labelled by hand
  (tests/data/names/train_labels.tsv; the texts come from the shared real-text folder), none of
  them in the development set's sample or a near duplicate of a sampled text: the text the
  filter meets;
- Universal NER's PER spans over UD Chinese-GSDSimp and UD Chinese-GSD (the same Wikipedia
  sentences, simplified and traditional), their train files;
- Weibo NER (2nd version), PER.NAM spans (PER.NOM, nominals such as 老师, count as not names),
  its train file;
- Flickr8k-CN captions of Flickr8k's train and validation images, which name nobody: the
  human-written ones (zhc) and the machine translations (zhb, zhg) of the train images' English
  captions, less any caption written like one of the text development set's.
Four networks from four seeds; the layer averages their probabilities.

The screen (names.NameScreen) learns the layer's probabilities on the real-text sets' other
texts (tests/namedev.py: unlabelled_texts), and whether the filter masks a name in each, and the
labels above where there are labels. The hand-labelled captions holding the release's <人名> are
also read with real names in its slots (slot_filled).

    python tests/name_layer.py --mirrors MIRRORS --out wukong_data/stages/filter

The text development set (tests/textdev.py) must exist: its captions are left out of training.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import namedev  # noqa: E402
import textdev  # noqa: E402
from textdev import Mirrors, clean, conllu_sentences, weibo_tagged  # noqa: E402

UNER = {"UniversalNER/UNER_Chinese-GSDSIMP": "zh_gsdsimp-ud-train.iob2",
        "UniversalNER/UNER_Chinese-GSD": "zh_gsd-ud-train.iob2"}
WEIBO = ("hltcoe/golden-horse", "data/weiboNER_2nd_conll.train")
FLICKR = "li-xirong/flickr8kcn"
HIDDEN, EPOCHS, BATCH, SEEDS = 64, 10, 2048, (0, 1, 2, 3)
# The hand-labelled web text counts this many times beside the corpora (twice gave no better
# development figures).
WEB_WEIGHT = 1
# Each training caption holding the release's placeholder is read this many times more, the
# placeholders filled with other real names each time.
FILLS = 3
# The screen: LAC's embeddings projected to WIDTH, one residual convolution per dilation.
WIDTH, DILATIONS, SCREEN_EPOCHS = 32, (1, 2, 4), 8


def uner_labels(text: str) -> list[tuple[str, np.ndarray]]:
    """(sentence, 1 where a character is in a PER span) per sentence of a Universal NER file."""
    out = []
    for sentence, tokens in conllu_sentences(text):
        sentence, at = clean(sentence), 0
        labels = np.zeros(len(sentence), np.float32)
        for token in tokens:
            start = sentence.find(token[1], at)
            if start < 0:
                break  # a token not in the text as written: leave the sentence out
            if token[2].endswith("-PER"):
                labels[start:start + len(token[1])] = 1
            at = start + len(token[1])
        else:
            if sentence:
                out.append((sentence, labels))
    return out


def weibo_labels(text: str) -> list[tuple[str, np.ndarray]]:
    """(message, 1 where a character is in a PER.NAM span) per message of a Weibo NER file;
    messages with a token of more than one character are left out."""
    return [("".join(chars), np.array([t.endswith("PER.NAM") for t in tags], np.float32))
            for chars, tags in weibo_tagged(text) if all(len(c) == 1 for c in chars)]


def captions(mirrors: Mirrors, lists: list[str], files: list[str], leave_out: set[str]) -> list[str]:
    images = {i for name in lists for i in mirrors.show(FLICKR, f"data/{name}").split()}
    out = []
    for name in files:
        for line in mirrors.show(FLICKR, f"data/{name}").splitlines():
            key, _, text = line.partition(" ")
            text = clean(text)
            if key.split(".jpg")[0] in images and text and text not in leave_out:
                out.append(text)
    return out


def training_set(mirrors: Mirrors) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]], dict]:
    """(the corpora's rows, the hand-labelled web text's rows, provenance)."""
    rows = []
    for repo, path in UNER.items():
        rows += uner_labels(mirrors.show(repo, path))
    rows += weibo_labels(mirrors.show(*WEIBO))
    # The development set's captions stay out, and so do other images' captions written the same.
    measured = {r["text"] for r in textdev.read("captions.tsv")}
    texts = captions(mirrors, ["flickr8ktrain.txt", "flickr8kval.txt"], ["flickr8kzhc.caption.txt"], measured)
    texts += captions(mirrors, ["flickr8ktrain.txt"], ["flickr8kzhb.caption.txt", "flickr8kzhg.caption.txt"], measured)
    rows += [(t, np.zeros(len(t), np.float32)) for t in texts]
    web = namedev.training_rows() + slot_filled(rows, FILLS)
    repos = [*UNER, WEIBO[0], FLICKR]
    provenance = {
        "sources": {repo: mirrors.commit(repo) for repo in repos},
        "files": [*(f"{r}:{p}" for r, p in UNER.items()), f"{WEIBO[0]}:{WEIBO[1]}",
                  f"{FLICKR}:data/flickr8kzh{{c,b,g}}.caption.txt (train and validation images)",
                  "Wukong release captions and Product1M titles: the lines of tests/data/names/train_labels.tsv"],
        "licences": "Universal NER, UD: CC BY-SA 4.0; Weibo NER annotations: CC BY-SA 3.0; Flickr8k-CN: "
                    "published for research; Wukong release captions: Noah-Wukong terms; Product1M: published "
                    "for research; our labels: Apache-2.0. The networks are distributed under CC BY-SA 4.0.",
        "sentences": len(rows) + len(web),
        "sentences_naming_someone": int(sum((labels == 1).any() for _, labels in rows + web)),
        "web_pieces": len(web), "web_weight": WEB_WEIGHT, "fills": FILLS,
        "hidden": HIDDEN, "epochs": EPOCHS, "seeds": list(SEEDS),
    }
    return rows, web, provenance


def slot_filled(corpora: list[tuple[str, np.ndarray]], fills: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """The training captions that hold the release's placeholder, each placeholder filled with a
    real name `fills` times over. The release put <人名> where its own pipeline found a name, so
    these are the contexts names stand in on the web, and the captions a user crawls hold the
    names themselves. The names: those labelled in the training lines and the corpora's, none
    found in a text of the development set's sample. A character touching a filled slot counts
    as unknown: it may be the rest of the name the placeholder hid (安<人名>·朱莉)."""
    captions = namedev.training_captions()
    names = fill_names(corpora, captions)
    rng = np.random.default_rng(seed)
    out = []
    for text, target in captions:
        parts = text.split(namedev.PLACEHOLDER)
        if len(parts) == 1:
            continue
        for _ in range(fills):
            filled, labels, at = parts[0], list(target[:len(parts[0])]), len(parts[0])
            for part in parts[1:]:
                name = names[rng.integers(len(names))]
                at += len(namedev.PLACEHOLDER)
                rest = list(target[at:at + len(part)])
                if filled and filled[-1].isalnum():
                    labels[-1] = -1
                if part and part[0].isalnum():
                    rest[0] = -1
                filled += name + part
                labels += [1.0] * len(name) + rest
                at += len(part)
            out.append((filled, np.array(labels, np.float32)))
    return out


def fill_names(corpora: list[tuple[str, np.ndarray]], captions: list[tuple[str, np.ndarray]]) -> list[str]:
    """The names (two characters or more) labelled in the corpora and the training captions, less
    any found in a text of the development set's sample."""
    from wukong_data.stages.filter.names import _runs

    names = set()
    for text, target in corpora + [p for c in captions for p in namedev.pieces(*c)]:
        for start, end in _runs(target == 1):
            if end - start >= 2:
                names.add(text[start:end])
    sampled = "\n".join(namedev.lines(name)[line - 1] for name, line in namedev.labels())
    return sorted(n for n in names if n not in sampled)


def train(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """One network per seed; the layer averages their probabilities (one run moved held-out
    figures by a few points with the order of its rows)."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    members = [train_one((x - mean) / scale, y, seed) for seed in SEEDS]
    return {"mean": mean, "scale": scale, **{k: np.stack([m[k] for m in members]) for k in members[0]}}


def train_one(x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """A dense layer of HIDDEN units and a logistic output, binary cross-entropy, AdamW."""
    import torch

    torch.manual_seed(seed)
    inputs, targets = torch.tensor(x), torch.tensor(y)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], HIDDEN), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                torch.nn.Linear(HIDDEN, 1))
    optimiser = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=1e-4)
    for _ in range(EPOCHS):
        order = torch.randperm(len(targets))
        for start in range(0, len(order), BATCH):
            batch = order[start:start + BATCH]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(inputs[batch]).squeeze(1), targets[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    first, last = model[0], model[3]
    return {"w1": first.weight.detach().numpy().T, "b1": first.bias.detach().numpy(),
            "w2": last.weight.detach().numpy()[0], "b2": last.bias.detach().numpy()[0]}


def screen_module(embedding: np.ndarray, width: int = WIDTH, dilations=DILATIONS):
    """The screen in torch, for training: what names.NameScreen computes in numpy."""
    import torch

    class Screen(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding.from_pretrained(torch.tensor(embedding), freeze=True)
            self.proj = torch.nn.Linear(embedding.shape[1], width)
            self.convs = torch.nn.ModuleList(torch.nn.Conv1d(width, width, 3, dilation=d, padding=d) for d in dilations)
            self.out = torch.nn.Linear(width, 1)
            self.dropout = torch.nn.Dropout(0.1)

        def forward(self, ids, lengths):  # ids: batch x characters
            keep = (torch.arange(ids.shape[1])[None] < lengths[:, None]).float().unsqueeze(1)
            h = self.proj(self.embedding(ids)).transpose(1, 2) * keep
            for conv in self.convs:
                h = (torch.relu(conv(self.dropout(h))) + h) * keep
            return self.out(h.transpose(1, 2)).squeeze(-1)

        def arrays(self) -> dict[str, np.ndarray]:
            out = {"proj": self.proj.weight.detach().numpy().T, "proj_b": self.proj.bias.detach().numpy(),
                   "out": self.out.weight.detach().numpy()[0], "out_b": self.out.bias.detach().numpy()[0],
                   "dilations": np.array(dilations)}
            for i, conv in enumerate(self.convs):
                out[f"conv{i}"] = conv.weight.detach().numpy().transpose(2, 1, 0)  # taps x in x out
                out[f"conv{i}_b"] = conv.bias.detach().numpy()
            return out

    return Screen()


def train_screen(rows: list[tuple[np.ndarray, np.ndarray, bool]], embedding: np.ndarray, seed: int = 0):
    """Rows: (character ids, target per character: a probability, or -1 to ignore, whether the
    text holds a name). The targets count as soft labels, names three times over the rest; and
    each text's highest logit learns whether the filter masks a name in it (five times over for
    those where it does), since that is what the screen decides."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = screen_module(embedding)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 3e-3, weight_decay=1e-4)
    order = np.argsort([len(ids) for ids, *_ in rows], kind="stable")
    batches = [order[i:i + 256] for i in range(0, len(order), 256)]
    for _ in range(SCREEN_EPOCHS):
        model.train()
        for b in rng.permutation(len(batches)):
            chosen = [rows[i] for i in batches[b]]
            width = max(len(ids) for ids, *_ in chosen)
            ids = np.zeros((len(chosen), width), np.int64)
            target = np.full((len(chosen), width), -1, np.float32)
            for k, (i, t, _) in enumerate(chosen):
                ids[k, :len(i)], target[k, :len(t)] = i, t
            ids, target = torch.tensor(ids), torch.tensor(target)
            lengths = torch.tensor([len(i) for i, *_ in chosen])
            known = target >= 0
            logits = model(ids, lengths)
            weight = 1 + 2 * target[known]
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits[known], target[known], reduction="none")
                    * weight).mean()
            highest = logits.masked_fill(torch.arange(width)[None] >= lengths[:, None], -1e4).max(dim=1).values
            named = torch.tensor([float(n) for *_, n in chosen])
            loss = loss + (torch.nn.functional.binary_cross_entropy_with_logits(highest, named, reduction="none")
                           * (1 + 4 * named)).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirrors", type=Path, required=True, help="the folder of bare git mirrors")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write both networks to")
    args = parser.parse_args()
    from wukong_data.recipe import FilterConfig
    from wukong_data.stages.filter.names import LacEncoder, NameLayer, name_spans

    corpora, web, provenance = training_set(Mirrors(args.mirrors))
    rows = corpora + web * WEB_WEIGHT
    encoder = LacEncoder(threads=0)
    x = np.vstack(encoder.features([text for text, _ in rows]))
    y = np.concatenate([labels for _, labels in rows])
    known = y >= 0
    save(args.out / "name_layer.npz", provenance, **train(x[known], y[known]))
    del x
    layer = NameLayer(args.out / "name_layer.npz")

    # The screen: the layer's answers on unlabelled real text (and whether the filter would mask a
    # name in it), the labels where there are labels.
    labelled = {text for text, _ in web}
    texts = [p for t in namedev.unlabelled_texts() for p in t.split(namedev.PLACEHOLDER) if p and p not in labelled]
    min_probability = FilterConfig().person_name_min_probability
    taught = []
    for batch, features in encoder.batches(texts):
        tags = encoder.decode(features)
        for i, p, kinds, begins in zip(batch, layer.probabilities(features), encoder.tag_kinds[tags],
                                       encoder.tag_begins[tags]):
            taught.append((encoder.ids(texts[i]), p, bool(name_spans(texts[i], p, kinds, begins, min_probability))))
    gold = [(encoder.ids(t), y, bool((y == 1).any())) for t, y in corpora + web]
    screen = train_screen(taught + gold, encoder.embedding)
    save(args.out / "name_screen.npz", {**provenance, "taught_on": len(taught), "width": WIDTH,
                                          "dilations": list(DILATIONS), "epochs": SCREEN_EPOCHS}, **screen.arrays())
    print(provenance)


def save(path: Path, provenance: dict, **arrays: np.ndarray) -> None:
    import json

    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, provenance=json.dumps(provenance, ensure_ascii=False),
             **{k: v if v.dtype.kind == "i" else v.astype(np.float32) for k, v in arrays.items()})
    tmp.replace(path)


if __name__ == "__main__":
    main()
