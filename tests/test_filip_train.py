"""The reference trainer: DDP equivalence, exact resume, retrieval far above chance, weights-only
checkpoints. Real training of the tiny preset on CPU."""
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from conftest import wukong
from wukong_data.filip.checkpoint import load_model
from wukong_data.filip.model import FILIP
from wukong_data.filip.presets import PRESETS
from wukong_data.filip.loss import filip_loss, top_tokens
from wukong_data.filip.config import TrainConfig
from wukong_data.filip.train import loss_step


def _ddp_worker(rank, world, port, batch, out, default_path=False):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = FILIP(dataclasses.replace(PRESETS["tiny"], vocab_size=100))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    images, ids = batch
    per = images.shape[0] // world
    cfg = TrainConfig(data="", out="", chunk=2) if default_path else \
        TrainConfig(data="", out="", top_token_fraction=0.0, fp16_gather=False, chunk=2)
    loss = loss_step(ddp, images[rank * per:(rank + 1) * per], ids[rank * per:(rank + 1) * per], cfg, world, rank)
    loss.backward()
    torch.save({"loss": loss.detach(), "grads": {n: p.grad for n, p in model.named_parameters()}}, f"{out}/{rank}.pt")
    torch.distributed.destroy_process_group()


def _batch():
    g = torch.Generator().manual_seed(1)
    images = torch.randn(8, 3, 64, 64, generator=g)
    ids = torch.randint(5, 100, (8, 32), generator=g)
    ids[:, 2] = 3
    ids[torch.arange(8), torch.randint(4, 32, (8,), generator=g)] = 0
    ids = ids * (ids.cumprod(1) != 0)  # pad after the first zero
    return images, ids


def _run_ddp(images, ids, out, default_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, (images, ids), str(out), default_path), nprocs=2, join=True)
    return [torch.load(out / f"{r}.pt", weights_only=True) for r in range(2)]


def test_two_ddp_processes_equal_one_process_on_the_whole_batch(tmp_path):
    images, ids = _batch()
    torch.manual_seed(0)
    model = FILIP(dataclasses.replace(PRESETS["tiny"], vocab_size=100))
    cfg = TrainConfig(data="", out="", chunk=2)
    loss = loss_step(model, images, ids, cfg, 1, 0)
    loss.backward()
    ranks = _run_ddp(images, ids, tmp_path, default_path=False)
    assert abs((ranks[0]["loss"] + ranks[1]["loss"]).item() / 2 - loss.item()) < 1e-5
    for name, p in model.named_parameters():
        assert torch.allclose(ranks[0]["grads"][name], p.grad, atol=1e-5), name  # DDP averaged them
        assert torch.allclose(ranks[1]["grads"][name], p.grad, atol=1e-5), name


def test_ddp_default_path_top_tokens_and_fp16_gather_match_a_direct_computation(tmp_path):
    """FILIP's default multi-process path: each process sends its top 25% tokens in fp16. The
    losses and averaged gradients of two processes equal one process computing the same thing
    on the gathered tokens directly."""
    images, ids = _batch()
    torch.manual_seed(0)
    model = FILIP(dataclasses.replace(PRESETS["tiny"], vocab_size=100))
    cfg = TrainConfig(data="", out="", chunk=2)
    assert cfg.top_token_fraction == 0.25 and cfg.fp16_gather
    per = images.shape[0] // 2
    local = [model(images[r * per:(r + 1) * per], ids[r * per:(r + 1) * per]) for r in range(2)]
    sent = [top_tokens(img, txt, mask, cfg.top_token_fraction) for img, txt, mask in local]
    assert sent[0][0].shape[1] == round(local[0][0].shape[1] * 0.25)
    all_img = torch.cat([s[0].half().float() for s in sent])
    all_txt = torch.cat([s[1].half().float() for s in sent])
    all_mask = torch.cat([s[2] for s in sent])
    losses = [filip_loss(*local[r], model.logit_scale, all_img, all_txt, all_mask, offset=r * per, chunk=cfg.chunk)
              for r in range(2)]
    (sum(losses) / 2).backward()
    ranks = _run_ddp(images, ids, tmp_path, default_path=True)
    for r in range(2):
        assert abs(ranks[r]["loss"].item() - losses[r].item()) < 1e-4, r
    for name, p in model.named_parameters():
        assert torch.allclose(ranks[0]["grads"][name], p.grad, atol=1e-4, rtol=1e-3), name
        assert torch.allclose(ranks[1]["grads"][name], p.grad, atol=1e-4, rtol=1e-3), name


def _losses(run: Path) -> dict:
    out = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            out[record["step"]] = record["loss"]
    return out


def test_resume_after_sigkill_reproduces_the_next_losses(split, tmp_path):
    args = ["train-reference", "--data", split / "train", "--steps", "16", "--batch-size", "16", "--workers", "1",
            "--checkpoint-every", "8", "--warmup", "4", "--log-every", "1", "--quiet"]
    straight = tmp_path / "straight"
    wukong(*args, "--out", straight)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "wukong_data", *map(str, args), "--out", str(killed)],
                            start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = killed / "checkpoints" / "latest"
    deadline = time.monotonic() + 300
    while not latest.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert latest.read_text() == "step_00000008"
    wukong(*args, "--out", killed, "--resume")
    expected, resumed = _losses(straight), _losses(killed)
    assert sorted(expected) == list(range(1, 17))
    for step in range(9, 17):
        assert resumed[step] == pytest.approx(expected[step], abs=1e-5), step


def test_tiny_model_retrieval_far_above_chance_and_weights_only_checkpoint(tiny_run):
    run = tiny_run
    final = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]["eval"]
    print(f"\nheld-out retrieval on {final['n']} pairs (chance R@1 {final['chance_r@1']}): {final}")
    assert final["image_to_text"]["r@1"] >= 10 * final["chance_r@1"]
    assert final["text_to_image"]["r@1"] >= 10 * final["chance_r@1"]
    assert isinstance(load_model(run), FILIP) and (run / "vocab.txt").exists()


def test_checkpoints_load_without_pickle(tiny_run, monkeypatch):
    """The weights are a safetensors file, and loading a model never unpickles anything."""
    from safetensors import safe_open

    with safe_open(str(tiny_run / "model.safetensors"), framework="pt") as f:
        names = set(f.keys())
    assert names == set(FILIP(load_model(tiny_run).cfg).state_dict())

    def no_pickle(*args, **kwargs):
        raise AssertionError("load_model unpickled something")

    monkeypatch.setattr(torch, "load", no_pickle)
    monkeypatch.setattr("pickle.load", no_pickle)
    monkeypatch.setattr("pickle.loads", no_pickle)
    assert isinstance(load_model(tiny_run), FILIP)


def test_train_reference_user_errors(split, tmp_path):
    proc = wukong("train-reference", "--data", tmp_path, "--out", tmp_path / "r", check=False)
    assert proc.returncode == 2 and "no sizes.json here or in final/" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = wukong("train-reference", "--data", tmp_path, "--model", "vit-h", "--out", tmp_path / "r", check=False)
    assert proc.returncode == 2 and "unknown model" in proc.stderr
    # A Parquet-only export, by its folder or its files: training reads tars.
    (tmp_path / "parquet").mkdir()
    (tmp_path / "parquet" / "sizes.json").write_text('{"00000.parquet": 3}')
    shutil.copy(next((split / "train" / "final").glob("*.parquet")), tmp_path / "parquet" / "00000.parquet")
    for data, expected in ((tmp_path / "parquet", "its shards are Parquet only"),
                           (f"{tmp_path}/parquet/*.parquet", "00000.parquet is not a WebDataset tar shard")):
        proc = wukong("train-reference", "--data", data, "--out", tmp_path / "r", check=False)
        assert proc.returncode == 2 and expected in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    # A mistaken --eval-data is answered before the training, not after it.
    proc = wukong("train-reference", "--data", split / "train", "--eval-data", tmp_path / "nope", "--out", tmp_path / "r",
                  check=False)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: --eval-data {tmp_path / 'nope'}: no such shard")
    assert not (tmp_path / "r").exists()


def test_zero_shot_colour_classification_with_prompt_ensembling(tiny_run, split):
    import polars as pl

    from wukong_data.demo.synth import COLOURS
    from wukong_data.filip.data import LoaderSpec, every_sample
    from wukong_data.filip.evaluate import zero_shot
    from wukong_data.filip.shards import shards
    from wukong_data.filip.tokenizer import ChineseTokenizer

    model = load_model(tiny_run)
    cfg = model.cfg
    spec = LoaderSpec(*shards(split / "eval"), str(tiny_run / "vocab.txt"), cfg.context_length, cfg.image_size,
                      cfg.mean, cfg.std, batch_size=64, workers=0, seed=0, train=False)
    images, keys = zip(*[(images, keys) for images, _, keys in every_sample(spec)])
    images, keys = torch.cat(images), [k for batch in keys for k in batch]
    captions = dict(pl.read_parquet(split / "eval" / "final" / "*.parquet").select("key", "caption").iter_rows())
    classes = list(COLOURS)
    labels = torch.tensor([next(i for i, c in enumerate(classes) if c in captions[k]) for k in keys])
    predicted = zero_shot(model, images, classes, ChineseTokenizer(tiny_run / "vocab.txt"))
    accuracy = (predicted == labels).float().mean().item()
    print(f"\nzero-shot colour accuracy on {len(labels)} held-out images: {accuracy:.2f} (chance {1 / len(classes):.2f})")
    assert accuracy >= 2 / len(classes)


def test_a_run_shorter_than_its_warm_up_says_so_and_ends_with_its_loss(split, tmp_path):
    proc = wukong("train-reference", "--data", split / "train", "--out", tmp_path / "run", "--steps", "2",
                  "--warmup", "5", "--batch-size", "8", "--workers", "0", "--quiet")
    assert "ends inside the warm-up" in proc.stderr and "trained 2 steps; the last batch's loss" in proc.stderr


def test_clip_loss_trains_the_same_towers_pooled_and_scores_by_cosine(split, tmp_path):
    """--loss clip: one pooled token a side, so late interaction is the cosine of the pooled
    embeddings; it learns, its checkpoint says so, and align refuses it in one line."""
    run = tmp_path / "clip"
    wukong("train-reference", "--data", split / "train", "--eval-data", split / "eval", "--out", run, "--loss", "clip",
           "--steps", "30", "--batch-size", "32", "--lr", "1e-3", "--warmup", "20", "--workers", "1", "--quiet")
    final = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]["eval"]
    print(f"\nCLIP held-out retrieval on {final['n']} pairs: {final}")
    assert final["text_to_image"]["r@1"] >= 5 * final["chance_r@1"]
    model = load_model(run)
    assert model.cfg.loss == "clip" and model.reduce is None
    filip = FILIP(dataclasses.replace(model.cfg, loss="filip"))
    assert set(filip.state_dict()) == set(model.state_dict())  # the same towers and projections
    images, ids = torch.rand(3, 3, 64, 64), torch.randint(5, model.cfg.vocab_size, (3, 12))
    with torch.no_grad():
        img, txt, mask = model(images, ids)
        pooled_img, _ = model.visual(images)
        pooled_txt, _ = model.text(ids)
    assert img.shape == (3, 1, model.cfg.token_dim) and txt.shape == (3, 1, model.cfg.token_dim) and mask.all()
    from wukong_data.filip.loss import pair_scores

    cosine = torch.nn.functional.cosine_similarity(model.image_proj(pooled_img), model.text_proj(pooled_txt))
    assert torch.allclose(pair_scores(img, txt, mask), cosine, atol=1e-5)
    import polars as pl

    key = pl.read_parquet(split / "eval" / "final" / "*.parquet")["key"][0]
    proc = wukong("align", split / "eval", "--checkpoint", run, "--keys", key, "--out", tmp_path / "a", check=False)
    assert proc.returncode == 2 and "one vector a side" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = wukong("train-reference", "--data", split / "train", "--loss", "siglip", "--out", tmp_path / "r", check=False)
    assert proc.returncode == 2 and "--loss siglip: expected one of filip, clip" in proc.stderr


def test_lit_nudenet_without_the_filter_extra_is_a_one_line_error(split, monkeypatch):
    """lit-nudenet reads nudenet's detector and LAC's embeddings, which `wukong-data[filter]`
    installs: where they are missing, the check says what to install before any work."""
    from wukong_data.errors import UserError
    from wukong_data.filip.config import check

    monkeypatch.setattr("wukong_data.filip.config.find_spec", lambda name: None if name == "nudenet" else True)
    with pytest.raises(UserError, match=r"nudenet missing\): pip install 'wukong-data\[filter\]'"):
        check(TrainConfig(data=str(split / "train"), out="unused", model="lit-nudenet"))
