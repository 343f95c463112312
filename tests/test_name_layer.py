"""The name layer's build (tests/name_layer.py): labels read from the corpora's formats, and the
numpy layer the filter runs giving what the trained networks give."""
import numpy as np

import name_layer
from wukong_data.stages.filter.names import NameLayer

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
    NameLayer.save(tmp_path / "layer.npz", {"sources": {}}, **weights)
    layer = NameLayer(tmp_path / "layer.npz")
    p = layer.probabilities(x.reshape(400, 30, 12)).reshape(-1)
    hidden = np.maximum(np.einsum("tf,mfh->mth", (x - weights["mean"]) / weights["scale"], weights["w1"])
                        + weights["b1"][:, None], 0)
    expected = (1 / (1 + np.exp(-(np.einsum("mth,mh->mt", hidden, weights["w2"]) + weights["b2"][:, None])))).mean(0)
    assert np.allclose(p, expected, atol=1e-5)
    assert p[y == 1].mean() > p[y == 0].mean() + 0.05  # it learnt the labels (0.37 against 0.25)
