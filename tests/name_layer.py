"""Builds the filter's name layer (wukong_data/stages/filter/name_layer.npz) from public text.

The layer reads LAC's BiGRU output and tag scores for each character (names.LacEncoder) and
gives the probability that the character is in a person name. It is trained on:
- Universal NER's PER spans over UD Chinese-GSDSimp and UD Chinese-GSD (the same Wikipedia
  sentences, simplified and traditional), their train files;
- Weibo NER (2nd version), PER.NAM spans (PER.NOM, nominals such as 老师, count as not names),
  its train file;
- Flickr8k-CN captions of Flickr8k's train and validation images, which name nobody: the
  human-written ones (zhc) and the machine translations (zhb, zhg) of the train images' English
  captions, less any caption written like one of the development set's.
Not used: the test files and test images (the development set's held-out part) and the dev
files of Universal NER and Weibo NER (where the threshold was chosen).

    python tests/name_layer.py --mirrors /work/.mirror --out wukong_data/stages/filter/name_layer.npz

Four networks from four seeds; the layer averages their probabilities. The development set
(tests/textdev.py) must exist: its captions are left out of training.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import textdev  # noqa: E402
from textdev import Mirrors, clean, conllu_sentences, weibo_tagged  # noqa: E402

UNER = {"UniversalNER/UNER_Chinese-GSDSIMP": "zh_gsdsimp-ud-train.iob2",
        "UniversalNER/UNER_Chinese-GSD": "zh_gsd-ud-train.iob2"}
WEIBO = ("hltcoe/golden-horse", "data/weiboNER_2nd_conll.train")
FLICKR = "li-xirong/flickr8kcn"
HIDDEN, EPOCHS, BATCH, SEEDS = 64, 10, 2048, (0, 1, 2, 3)


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
    """(message, 1 where a character is in a PER.NAM span) per message of a Weibo NER file."""
    return [("".join(chars), np.array([t.endswith("PER.NAM") for t in tags], np.float32))
            for chars, tags in weibo_tagged(text)]


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


def training_set(mirrors: Mirrors) -> tuple[list[tuple[str, np.ndarray]], dict]:
    rows = []
    for repo, path in UNER.items():
        rows += uner_labels(mirrors.show(repo, path))
    rows += weibo_labels(mirrors.show(*WEIBO))
    # The development set's captions stay out, and so do other images' captions written the same.
    measured = {r["text"] for r in textdev.read("captions.tsv")}
    texts = captions(mirrors, ["flickr8ktrain.txt", "flickr8kval.txt"], ["flickr8kzhc.caption.txt"], measured)
    texts += captions(mirrors, ["flickr8ktrain.txt"], ["flickr8kzhb.caption.txt", "flickr8kzhg.caption.txt"], measured)
    rows += [(t, np.zeros(len(t), np.float32)) for t in texts]
    repos = [*UNER, WEIBO[0], FLICKR]
    provenance = {
        "sources": {repo: mirrors.commit(repo) for repo in repos},
        "files": [*(f"{r}:{p}" for r, p in UNER.items()), f"{WEIBO[0]}:{WEIBO[1]}",
                  f"{FLICKR}:data/flickr8kzh{{c,b,g}}.caption.txt (train and validation images)"],
        "licences": "Universal NER, UD: CC BY-SA 4.0; Weibo NER annotations: CC BY-SA 3.0; Flickr8k-CN: "
                    "published for research. The layer is distributed under CC BY-SA 4.0.",
        "sentences": len(rows),
        "sentences_naming_someone": int(sum(labels.any() for _, labels in rows)),
        "hidden": HIDDEN, "epochs": EPOCHS, "seeds": list(SEEDS),
    }
    return rows, provenance


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirrors", type=Path, required=True, help="the folder of bare git mirrors")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from wukong_data.stages.filter.names import LacEncoder, NameLayer

    rows, provenance = training_set(Mirrors(args.mirrors))
    features = LacEncoder(threads=1).features([text for text, _ in rows])
    weights = train(np.vstack(features), np.concatenate([labels for _, labels in rows]))
    NameLayer.save(args.out, provenance, **weights)
    print(provenance)


if __name__ == "__main__":
    main()
