"""The FILIP loss against an independent, direct implementation (loops, float64)."""
import torch
import torch.nn.functional as F

from wukong_data.filip.loss import filip_loss, pair_scores


def direct_similarities(img, txt, mask):
    """Literally the papers' formulas, one pair at a time."""
    b1, b2 = img.shape[0], txt.shape[0]
    i2t = torch.zeros(b1, b2, dtype=img.dtype)
    t2i = torch.zeros(b2, b1, dtype=img.dtype)
    for i in range(b1):
        for j in range(b2):
            real = txt[j][mask[j]]  # (n_real, d)
            sim = img[i] @ real.T  # (n1, n_real)
            i2t[i, j] = sim.max(dim=1).values.mean()
            t2i[j, i] = sim.max(dim=0).values.mean()
    return i2t, t2i


def direct_loss(img, txt, mask, logit_scale, smoothing=0.0):
    i2t, t2i = direct_similarities(img, txt, mask)
    labels = torch.arange(img.shape[0])
    s = logit_scale.exp()
    return (F.cross_entropy(s * i2t, labels, label_smoothing=smoothing)
            + F.cross_entropy(s * t2i, labels, label_smoothing=smoothing)) / 2


def _inputs(seed=0, b=7, n1=9, n2=6, d=5):
    g = torch.Generator().manual_seed(seed)
    img = F.normalize(torch.randn(b, n1, d, generator=g, dtype=torch.float64), dim=-1).requires_grad_()
    txt = F.normalize(torch.randn(b, n2, d, generator=g, dtype=torch.float64), dim=-1).requires_grad_()
    lengths = torch.randint(1, n2 + 1, (b,), generator=g)
    mask = torch.arange(n2)[None] < lengths[:, None]  # padding at the end, at least one real token
    scale = torch.tensor(2.3, dtype=torch.float64, requires_grad=True)
    return img, txt, mask, scale


def test_loss_values_and_gradients_match_the_direct_formula_chunked_or_not():
    for chunk in (0, 1, 3, 100):
        for smoothing in (0.0, 0.1):
            img, txt, mask, scale = _inputs(seed=chunk)
            expected = direct_loss(img, txt, mask, scale, smoothing)
            grads_expected = torch.autograd.grad(expected, (img, txt, scale))
            ours = filip_loss(img, txt, mask, scale, label_smoothing=smoothing, chunk=chunk)
            grads = torch.autograd.grad(ours, (img, txt, scale))
            assert abs(ours.item() - expected.item()) < 1e-5
            for a, b in zip(grads, grads_expected):
                assert torch.allclose(a, b, atol=1e-5), (chunk, (a - b).abs().max())


def test_padding_never_matters():
    img, txt, mask, scale = _inputs(seed=5)
    noisy = txt.detach().clone()
    noisy[~mask] = 123.0  # garbage in padded positions
    assert torch.allclose(filip_loss(img, txt, mask, scale), filip_loss(img, noisy, mask, scale))


def test_pair_scores_are_the_diagonal():
    img, txt, mask, _ = _inputs(seed=2)
    i2t, t2i = direct_similarities(img.detach(), txt.detach(), mask)
    assert torch.allclose(pair_scores(img.detach(), txt.detach(), mask), (i2t.diagonal() + t2i.diagonal()) / 2)


def test_pair_roc_auc_counts_every_mismatch_with_ties_half():
    from wukong_data.filip.evaluate import _pair_auc

    scores = torch.randint(0, 5, (7, 7)).float()  # many ties
    own = scores.diagonal()
    others = scores[~torch.eye(7, dtype=torch.bool)]
    direct = ((own[:, None] > others[None]).float() + 0.5 * (own[:, None] == others[None]).float()).mean()
    assert _pair_auc(scores) == round(float(direct), 4)
