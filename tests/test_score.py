"""The score stage: pair scores from a tiny FILIP checkpoint trained in the test, thresholds,
and the word-patch alignment pictures."""
import io
import json

import numpy as np
import polars as pl
import pytest
from PIL import Image

from conftest import wukong
from wukong_data.demo.synth import COLOURS
from wukong_data.filip.shards import shards
from wukong_data.stages.score.scorer import Scorer


def _auc(positive: np.ndarray, negative: np.ndarray) -> float:
    return float((positive[:, None] > negative[None, :]).mean() + 0.5 * (positive[:, None] == negative[None, :]).mean())


def test_matched_pairs_score_above_shuffled_ones(tiny_run, split):
    rows = pl.read_parquet(split / "eval" / "final" / "*.parquet")
    images, captions = rows["jpg"].to_list(), rows["caption"].to_list()
    scorer = Scorer(tiny_run, "cpu", batch_size=16)
    matched = scorer.score(images, captions)
    shuffled = scorer.score(images, captions[7:] + captions[:7])
    auc = _auc(matched, shuffled)
    print(f"\nROC-AUC matched vs shuffled on {len(images)} held-out pairs: {auc:.3f}")
    assert auc >= 0.9
    assert np.isnan(scorer.score([b"not an image"], ["红色的圆形"]))[0]


def test_demo_build_scores_and_catches_mismatched_captions(demo_build, samples):
    from test_crawl import row_index

    decisions = pl.read_parquet(sorted((demo_build / "score").glob("[0-9]*.parquet")))
    kept = decisions["reason"].is_null().sum()
    assert abs(kept - 0.9 * decisions.height) <= 1  # the demo recipe keeps the top 90%
    assert decisions["filip_score"].null_count() == 0
    mismatched = pl.Series([samples[row_index(k)].kind == "mismatched_caption" for k in decisions["key"]])
    rejected = decisions["reason"].is_not_null()
    caught, others = (rejected & mismatched).sum(), (rejected & ~mismatched).sum()
    rate, other_rate = caught / mismatched.sum(), others / (~mismatched).sum()
    print(f"\nmismatched captions caught by the score stage: {caught} of {mismatched.sum()} ({rate:.0%}); "
          f"other rows cut: {others} of {(~mismatched).sum()} ({other_rate:.0%})")
    # A score blind to the mismatch would cut both at the same rate (10% here); the demo's model
    # cuts all 20 (README).
    assert mismatched.sum() == 20 and caught >= 18


def test_alignment_pictures_put_the_colour_word_on_the_shape(tiny_run, split, tmp_path):
    rows = pl.read_parquet(split / "eval" / "final" / "*.parquet").select("key", "caption", "jpg")
    # Every held-out caption naming a colour (79 in the demo): on the first 40 the count fell from
    # 20 or more to 15 when the demo changed its scorer, a swing of sampling, not of the model.
    rows = rows.filter(pl.col("caption").str.contains("|".join(c for c in COLOURS if c != "黑色")))
    out = tmp_path / "align"
    wukong("align", split / "eval", "--checkpoint", tiny_run, "--keys", ",".join(rows["key"]), "--out", out)
    hits, chance = 0, 0.0
    for key, caption, data in rows.iter_rows():
        assert (out / f"{key}.png").exists()
        info = json.loads((out / f"{key}.json").read_text())
        colour = next(c for c in COLOURS if c in caption and c != "黑色")
        token = next(t for t in info["tokens"] if t["position"] == caption.index(colour) + 1)
        assert token["token"] == colour[0]
        # The best patch, on the image as the model saw it (shorter side resized, centre crop).
        image = Image.open(io.BytesIO(data)).convert("RGB")
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        pixels = np.asarray(image.crop((left, top, left + side, top + side))).astype(int)
        grid, cell = info["grid"], side / info["grid"]
        on_shape = [[_on_shape(pixels[int(r * cell):int((r + 1) * cell), int(c * cell):int((c + 1) * cell)])
                     for c in range(grid)] for r in range(grid)]
        r, c = divmod(token["patches"][0], grid)
        hits += on_shape[r][c]
        chance += np.mean(on_shape)  # a patch drawn at random
    print(f"\ncolour word's best patch on the shape: {hits} of {rows.height} (a random patch: {chance:.1f})")
    # The tiny model (200 steps): 35 of 79 against 15.1 by chance; reading its patch grid transposed
    # gives 22, which twice chance refuses.
    assert rows.height >= 40 and hits >= 2 * chance


def _on_shape(patch: np.ndarray) -> bool:
    """Some of the patch is the shape: the backgrounds are white or grey, the shapes coloured."""
    return bool(((patch.max(-1) - patch.min(-1)) > 60).mean() > 0.05)


def _scored_by(url_list, tmp_path, scorer: str) -> tuple[pl.DataFrame, dict]:
    """40 demo rows crawled, scored by a user's pretrained CLIP (`scorer`: its [score] keys) keeping
    the best half, exported: the score decisions and the manifest. Every decodable row's score
    is its own (none missing, none shared) and half the scored rows are kept."""
    recipe = tmp_path / "clip.toml"
    recipe.write_text(f'stages = ["crawl", "score", "export"]\n[crawl]\nsamples_per_shard = 20\nallow_addresses = ["127.0.0.1"]\n'
                      f'[score]\n{scorer}\nkeep_top_fraction = 0.5\n')
    out = tmp_path / "b"
    wukong("build", recipe, "--input", url_list, "--out", out, "--limit", "40", "--quiet")
    decisions = pl.read_parquet(sorted((out / "score").glob("[0-9]*.parquet")))
    scores = decisions.filter(pl.col("reason") != "decode_failed")["filip_score"]
    assert scores.null_count() == 0 and scores.is_between(-1, 1).all() and scores.n_unique() == scores.len() > 10
    assert abs(decisions["reason"].is_null().sum() - 0.5 * decisions.height) <= 1
    return decisions, json.loads((out / "manifest.json").read_text())


def test_global_clip_score_from_local_open_clip_weights(url_list, tmp_path):
    """A user's own open_clip model and weights by path (here: the tiny config, weights saved by
    torch), through the whole score stage."""
    import open_clip
    import torch

    from conftest import ASSETS

    model = open_clip.create_model(f"local-dir:{ASSETS / 'tiny-clip'}")
    torch.save(model.state_dict(), tmp_path / "clip.pt")
    _, manifest = _scored_by(url_list, tmp_path, f'open_clip_model = "local-dir:{ASSETS / "tiny-clip"}"\n'
                                                 f'open_clip_weights = "clip.pt"')
    assert manifest["stages"]["score"]["decided_by"]["reads"]["open_clip_weights"]


def _encoded(fmt: str) -> bytes:
    from wukong_data.demo.synth import draw

    buf = io.BytesIO()
    draw("红色", "圆形", "中间", "白色").save(buf, {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt])
    return buf.getvalue()


def test_decode_batch_reads_every_format_and_refuses_bad_or_oversized_images():
    import torch

    from wukong_data.filip.decode import decode_batch

    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, "PNG")  # 50 KB that would decode to 400M pixels
    images = [_encoded("jpg"), _encoded("png"), _encoded("webp"), b"<html>", _encoded("jpg")[:200], bomb.getvalue()]
    decoded = decode_batch(images, torch.device("cpu"))
    for tensor in decoded[:3]:
        assert tensor.shape == (3, 256, 288) and tensor.dtype == torch.uint8
    assert (decoded[0].float() - decoded[1].float()).abs().mean() < 3  # the same picture
    assert decoded[3] is None and decoded[5] is None


@pytest.fixture(scope="module")
def hf_text_clip(tmp_path_factory) -> str:
    """open_clip's multilingual kind (xlm-roberta-base-ViT-B-32: a Hugging Face XLM-R text tower
    and its tokenizer) in miniature, randomly initialised, every part on local disk: the
    open_clip config names the local text tower where the released one names the hub's
    xlm-roberta-base."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    from wukong_data.demo.synth import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, TEMPLATES

    root = tmp_path_factory.mktemp("hf-clip")
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.BertNormalizer(handle_chinese_chars=True, lowercase=False)
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator([t.format(bg=b, pos=p, colour=c, shape=s) for t in TEMPLATES for b in BACKGROUNDS
                                   for p in POSITIONS for c in COLOURS for s in SHAPES],
                                  trainers.UnigramTrainer(vocab_size=200, special_tokens=specials, unk_token="<unk>"))
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>", mask_token="<mask>").save_pretrained(root / "clip")
    torch.manual_seed(0)
    XLMRobertaModel(XLMRobertaConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=40,
                                     pad_token_id=1), add_pooling_layer=False).save_pretrained(root / "text")
    # open_clip reads a local-dir model's tokenizer from its own folder (hf_tokenizer_name then only
    # says the tokenizer is Hugging Face's), its text tower from hf_model_name.
    (root / "clip" / "open_clip_config.json").write_text(json.dumps({"model_cfg": {
        "embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
        "text_cfg": {"hf_model_name": str(root / "text"), "hf_tokenizer_name": "xlm-roberta-base",
                     "hf_proj_type": "mlp", "hf_pooler_type": "mean_pooler", "context_length": 32}}}))
    return f"local-dir:{root / 'clip'}"


@pytest.mark.parametrize("text_tower", ["open_clip", "hugging_face"])
def test_clip_score_pairs_each_image_with_its_own_caption(text_tower, request, tmp_path, monkeypatch):
    """The stage's CLIP scorer gives exactly the cosine open_clip gives for each (image, caption)
    pair: a swapped, shifted or ignored caption would not. Both kinds of open_clip text tower, its
    own and a Hugging Face one (the multilingual models'), load offline."""
    import open_clip
    import torch

    from conftest import ASSETS
    from wukong_data.demo.synth import COLOURS, SHAPES, draw, jpeg
    from wukong_data.stages.score.scorer import ClipScorer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a look-up on the hub would fail, not download
    name = f"local-dir:{ASSETS / 'tiny-clip'}" if text_tower == "open_clip" else request.getfixturevalue("hf_text_clip")
    torch.manual_seed(0)
    torch.save(open_clip.create_model(name).state_dict(), tmp_path / "clip.pt")
    scorer = ClipScorer("open_clip", name, tmp_path / "clip.pt", "cpu", batch_size=3)
    if text_tower == "hugging_face":
        assert type(scorer.model.text).__name__ == "HFTextEncoder" and type(scorer.tokenizer).__name__ == "HFTokenizer"
    images = [jpeg(draw(c, s, "中间", "白色")) for c, s in zip(list(COLOURS)[:5], SHAPES * 2)]
    captions = [f"白色背景的中间有一个{c}{s}" for c, s in zip(list(COLOURS)[1:6], SHAPES * 2)]
    got = scorer.score(images, captions)
    model, tokenizer = scorer.model, open_clip.get_tokenizer(name)
    with torch.no_grad():
        for i, (data, caption) in enumerate(zip(images, captions)):
            image = scorer.preprocess(Image.open(io.BytesIO(data)).convert("RGB"))[None]
            expected = (model.encode_image(image, normalize=True) * model.encode_text(tokenizer([caption]),
                                                                                      normalize=True)).sum()
            assert got[i] == pytest.approx(expected.item(), abs=1e-5), i
    assert not np.allclose(scorer.score(images, captions[1:] + captions[:1]), got, atol=1e-4)


@pytest.fixture(scope="module")
def cn_clip_checkpoint(tmp_path_factory):
    """A randomly initialised Chinese-CLIP RN50 built by the cn_clip package, saved the way its
    trainer saves (DDP's "module." prefix): the format of its released checkpoints."""
    import contextlib

    import torch
    from cn_clip.clip.utils import create_model

    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):
        model = create_model("RN50@RBT3-chinese")
    weights = tmp_path_factory.mktemp("cn_clip") / "clip_cn_rn50.pt"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, weights)
    return weights


def test_cn_clip_score_is_chinese_clips_own_cosine(cn_clip_checkpoint):
    """The Chinese-CLIP scorer gives the cosine cn_clip itself gives each (image, caption) pair."""
    import torch
    from cn_clip.clip import load_from_name, tokenize

    from wukong_data.demo.synth import COLOURS, SHAPES, draw, jpeg
    from wukong_data.stages.score.scorer import ClipScorer

    scorer = ClipScorer("cn_clip", "RN50", cn_clip_checkpoint, "cpu", batch_size=2)
    images = [jpeg(draw(c, s, "中间", "白色")) for c, s in zip(list(COLOURS)[:4], SHAPES * 2)]
    captions = ["一只红色的圆", "蓝色方块在中间", "草地上的狗", "白色背景上的三角形"]
    got = scorer.score(images, captions)
    model, preprocess = load_from_name(str(cn_clip_checkpoint), device="cpu", vision_model_name="RN50",
                                       text_model_name="RBT3-chinese", input_resolution=224)
    model.eval()
    with torch.no_grad():
        for i, (data, caption) in enumerate(zip(images, captions)):
            image = model.encode_image(preprocess(Image.open(io.BytesIO(data)).convert("RGB"))[None])
            text = model.encode_text(tokenize([caption]))
            assert got[i] == pytest.approx(torch.cosine_similarity(image, text).item(), abs=1e-4), i
    assert not np.allclose(scorer.score(images, captions[1:] + captions[:1]), got, atol=1e-4)


def test_cn_clip_checkpoint_scores_a_build(url_list, cn_clip_checkpoint, tmp_path):
    """[score] cn_clip_model + cn_clip_weights through the whole stage."""
    _, manifest = _scored_by(url_list, tmp_path, f'cn_clip_model = "RN50"\ncn_clip_weights = "{cn_clip_checkpoint}"')
    assert manifest["stages"]["score"]["decided_by"]["reads"]["cn_clip_weights"]
    assert "cn_clip" in manifest["stages"]["score"]["decided_by"]["reads"]["packages"]


def test_png_build_scores_trains_and_aligns(url_list, tiny_run, tmp_path):
    """encode_format = "png" all the way: the score stage decodes it (no decode_failed), and
    train-reference and align read the png column, from a build, its final/ folder or tar shards."""
    recipe = tmp_path / "png.toml"
    recipe.write_text(f'stages = ["crawl", "score", "export"]\n[crawl]\nsamples_per_shard = 40\nallow_addresses = ["127.0.0.1"]\nencode_format = "png"\nencode_quality = 6\n'
                      f'[score]\ncheckpoint = "{tiny_run}"\nmin_score = -1.0\n[export]\nsamples_per_shard = 30\n')
    out = tmp_path / "b"
    wukong("build", recipe, "--input", url_list, "--out", out, "--limit", "80", "--quiet")
    decisions = pl.read_parquet(sorted((out / "score").glob("[0-9]*.parquet")))
    assert decisions.height > 60 and decisions["reason"].null_count() == decisions.height
    assert pl.read_parquet(sorted((out / "final").glob("*.parquet"))).columns.count("png") == 1
    # Every form of --data names the same shards; one training reads the png column through them.
    last = len(shards(out)[0]) - 1
    forms = (out, out / "final", f"{out}/final/{{00000..{last:05d}}}.tar", f"{out}/final/*.tar")
    assert last >= 1 and len({shards(data) for data in forms}) == 1
    wukong("train-reference", "--data", forms[2], "--out", tmp_path / "run", "--steps", "1", "--batch-size", "8",
           "--workers", "0", "--quiet")
    assert (tmp_path / "run" / "model.safetensors").exists()
    key = decisions["key"][0]
    wukong("align", out, "--checkpoint", tiny_run, "--keys", key, "--out", tmp_path / "align")
    assert (tmp_path / "align" / f"{key}.png").exists()
