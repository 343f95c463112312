"""The name networks' build (tests/name_layer.py): labels read from the corpora's formats and our
own label files, and the numpy networks the filter runs giving what the trained networks give."""
import numpy as np
import pytest

import name_layer
import namedev
from wukong_data.stages.filter.names import NameLayer, NameScreen

UNER = """# sent_id = 1
# text = 玛丽·乔·怀特（Mary Jo White）任主席。
1\t玛丽·乔·怀特\tB-PER\t-\t-
2\t（\tO\t-\t-
3\tMary\tB-PER\t-\t-
4\tJo\tI-PER\t-\t-
5\tWhite\tI-PER\t-\t-
6\t）\tO\t-\t-
7\t任\tO\t-\t-
8\t主席\tO\t-\t-
9\t。\tO\t-\t-

"""

WEIBO = "王0\tB-PER.NAM\n平1\tI-PER.NAM\n老0\tB-PER.NOM\n师1\tI-PER.NOM\n好0\tO\n\n"


def test_labels_come_from_the_corpora_formats():
    [(text, labels)] = name_layer.uner_labels(UNER)
    assert text == "玛丽·乔·怀特（Mary Jo White）任主席。"
    assert "".join(c for c, y in zip(text, labels) if y) == "玛丽·乔·怀特MaryJoWhite"
    [(text, labels)] = name_layer.weibo_labels(WEIBO)
    assert text == "王平老师好" and labels.tolist() == [1, 1, 0, 0, 0]  # nominals are not names


def test_the_numpy_layer_gives_what_the_trained_networks_give(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12000, 12)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 1).astype(np.float32)
    weights = name_layer.train(x, y)
    name_layer.save(tmp_path / "layer.npz", {"sources": {}}, **weights)
    layer = NameLayer(tmp_path / "layer.npz")
    p = layer.probabilities(x.reshape(400, 30, 12)).reshape(-1)
    hidden = np.maximum(np.einsum("tf,mfh->mth", (x - weights["mean"]) / weights["scale"], weights["w1"])
                        + weights["b1"][:, None], 0)
    expected = (1 / (1 + np.exp(-(np.einsum("mth,mh->mt", hidden, weights["w2"]) + weights["b2"][:, None])))).mean(0)
    assert np.allclose(p, expected, atol=1e-5)
    assert p[y == 1].mean() > p[y == 0].mean() + 0.05  # it learnt the labels (0.37 against 0.25)


def test_the_numpy_screen_gives_what_the_trained_screen_gives(tmp_path):
    import torch

    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(50, 8)).astype(np.float32)
    rows = [(rng.integers(0, 50, size=n), rng.random(n).astype(np.float32), bool(rng.random() < 0.2))
            for n in rng.integers(1, 30, size=64)]
    model = name_layer.train_screen(rows, embedding)
    name_layer.save(tmp_path / "screen.npz", {"sources": {}}, **model.arrays())
    screen = NameScreen(tmp_path / "screen.npz", embedding)
    ids = [i for i, *_ in rows]
    with torch.no_grad():
        expected = [torch.sigmoid(model(torch.tensor(i)[None], torch.tensor([len(i)])))[0].numpy() for i in ids]
    for got, want in zip(screen.probabilities(ids, chunk=50), expected):
        assert np.allclose(got, want, atol=1e-5)


def test_training_rows_read_our_labels():
    if not (namedev.real_text() / "extra").is_dir():
        pytest.skip(f"no shared real text at {namedev.real_text()}")
    rows = namedev.training_rows()
    labelled = [y for _, y in rows]
    assert len(rows) > 18_000 and sum((y == 1).any() for y in labelled) > 1_500
    assert all(set(np.unique(y)) <= {-1, 0, 1} for y in labelled)
    # No training text is a sampled (development or held-out) text (but for bits of punctuation
    # between placeholders).
    sampled = {namedev.lines(s)[line - 1] for s, line in namedev.labels()}
    assert not {t for t, _ in rows if len(t) > 3} & {p for t in sampled for p in t.split(namedev.PLACEHOLDER)}


def test_the_release_placeholders_are_filled_with_names_no_sample_text_holds():
    if not (namedev.real_text() / "extra").is_dir():
        pytest.skip(f"no shared real text at {namedev.real_text()}")
    corpora = [("赫连明轩在北京", np.array([1, 1, 1, 1, 0, 0, 0], np.float32))]
    captions = namedev.training_captions()
    names = name_layer.fill_names(corpora, captions)
    sampled = "\n".join(namedev.lines(s)[line - 1] for s, line in namedev.labels())
    assert "赫连明轩" in names and len(names) > 1_000 and not [n for n in names if n in sampled]
    holding = [(t, y) for t, y in captions if namedev.PLACEHOLDER in t]
    rows = name_layer.slot_filled(corpora, fills=2)
    assert len(rows) == 2 * len(holding) > 500
    for (text, target), (original, labels) in zip(rows, [h for h in holding for _ in range(2)]):
        assert namedev.PLACEHOLDER not in text and len(target) == len(text)
        # Each placeholder became a name (a character touching a filled slot counts as unknown).
        assert len(text) >= len(original) - len(namedev.PLACEHOLDER) * original.count(namedev.PLACEHOLDER) \
            + 2 * original.count(namedev.PLACEHOLDER)
        assert (target == 1).sum() >= original.count(namedev.PLACEHOLDER)
