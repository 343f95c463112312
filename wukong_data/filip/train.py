"""`wukong train-reference`: FILIP on a build's final/ shards, one process or DDP (torchrun).

AdamW, linear warm-up then cosine decay, gradient clipping, bf16 autocast on GPU; features
gathered across processes (fp16 on the wire, FILIP's top-25% tokens when more than one process);
checkpoints every N steps; exact resume; metrics as JSON lines in RUN/metrics.jsonl.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

from ..storage import atomic_path, create_folder, write_json_atomic
from ..errors import UserError
from . import checkpoint
from .config import TrainConfig, check
from .data import LoaderSpec, PixelBatches, captions
from .detector import FeatureBatches, shard_features
from .evaluate import retrieval
from .loss import filip_loss, top_tokens
from .lit import LitConfig, LitNudenet
from .model import FILIP
from .presets import LIT_MODEL, PRESETS
from .shards import shards
from .tokenizer import ChineseTokenizer


def _dist() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _device(rank: int) -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


class _AllGather(torch.autograd.Function):
    """Concatenate every process's tensor. Backward sums the gradient every process computed for
    each part and hands each process its own part (all-reduce, then slice): works on gloo and NCCL."""

    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start:start + ctx.rows]


def _gather(x: torch.Tensor, half: bool) -> torch.Tensor:
    """All processes' x concatenated (fp16 on the wire if `half`); gradients reach each owner."""
    if not x.is_floating_point():
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)
    return _AllGather.apply(x.half() if half else x).to(x.dtype)


def _schedule(cfg: TrainConfig):
    def factor(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


def _vocab(cfg: TrainConfig, out: Path, rank: int) -> Path:
    if cfg.vocab:
        return Path(cfg.vocab)
    vocab = out / checkpoint.VOCAB
    if rank == 0 and not vocab.exists():
        ChineseTokenizer.train(captions(shards(cfg.data)[0]), out, cfg.vocab_size)
    if dist.is_initialized():
        dist.barrier()
    return vocab


def loss_step(model, images, ids, cfg: TrainConfig, world: int, rank: int) -> torch.Tensor:
    img, txt, mask = model(images, ids)
    scale = (model.module if hasattr(model, "module") else model).logit_scale
    if world == 1:
        return filip_loss(img, txt, mask, scale, label_smoothing=cfg.label_smoothing, chunk=cfg.chunk)
    if cfg.top_token_fraction and cfg.top_token_fraction < 1:
        sent = top_tokens(img, txt, mask, cfg.top_token_fraction)
    else:
        sent = (img, txt, mask)
    all_img, all_txt = _gather(sent[0], cfg.fp16_gather), _gather(sent[1], cfg.fp16_gather)
    all_mask = _gather(sent[2].to(torch.uint8), False).bool()
    return filip_loss(img, txt, mask, scale, all_img, all_txt, all_mask, offset=rank * img.shape[0],
                      label_smoothing=cfg.label_smoothing, chunk=cfg.chunk)


def train(cfg: TrainConfig, ui=None) -> Path:
    check(cfg)
    rank, world = _dist()
    device = _device(rank)
    out = Path(cfg.out)
    if rank == 0:
        create_folder(out)
    tars, sizes = shards(cfg.data)
    vocab = _vocab(cfg, out, rank)
    tokenizer = ChineseTokenizer(vocab)
    torch.manual_seed(cfg.seed)
    if cfg.model == LIT_MODEL:
        model, batches = _lit_model(cfg, tokenizer, vocab, tars, sizes, out, world, ui)
    else:
        changes = {"vocab_size": tokenizer.vocab_size, "lock_image_tower": cfg.lock_image_tower, "loss": cfg.loss}
        if cfg.reduced_tokens is not None:
            changes["reduced_tokens"] = cfg.reduced_tokens
        model_cfg = dataclasses.replace(PRESETS[cfg.model], **changes)
        model = FILIP(model_cfg)
        batches = PixelBatches(LoaderSpec(tars, sizes, str(vocab), model_cfg.context_length, model_cfg.image_size,
                                          model_cfg.mean, model_cfg.std, cfg.batch_size, cfg.workers, cfg.seed,
                                          train=True))
    model = model.to(device)
    per_epoch = batches.per_epoch(world)
    if per_epoch == 0:
        raise UserError(f"{cfg.data}: too few samples for --batch-size {cfg.batch_size} on {world} process(es)")

    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg))
    step = 0
    latest = out / "checkpoints" / "latest"
    if cfg.resume:
        folder = out / "checkpoints" / latest.read_text().strip()
        model.load_state_dict(checkpoint.load_model(folder).state_dict())
        step = checkpoint.load_state(folder, optimizer, scheduler)["step"]
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)

    metrics = open(out / "metrics.jsonl", "a", encoding="utf-8") if rank == 0 else None
    if rank == 0:
        write_json_atomic(out / "train_config.json", dataclasses.asdict(cfg))
    if ui and rank == 0 and cfg.warmup >= cfg.steps:
        ui.print(f"note: --warmup {cfg.warmup} is not below --steps {cfg.steps}: the run ends inside the warm-up, "
                 f"before the learning rate reaches --lr {cfg.lr}")
    progress = ui.progress("train", total=cfg.steps, unit="steps") if (ui and rank == 0) else None
    advance = progress.__enter__() if progress else (lambda *a, **k: None)
    advance(completed=step)
    last_loss = None
    try:
        while step < cfg.steps:
            epoch, done_in_epoch = divmod(step, per_epoch)
            tic = time.perf_counter()
            for images, ids, _ in batches.epoch(epoch, rank, world, skip_batches=done_in_epoch):
                images, ids = images.to(device, non_blocking=True), ids.to(device, non_blocking=True)
                with autocast:
                    loss = loss_step(ddp, images, ids, cfg, world, rank)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                model.clamp_logit_scale()
                last_loss = loss.detach()
                step += 1
                advance(completed=step)
                if rank == 0 and (step % cfg.log_every == 0 or step == cfg.steps):
                    toc = time.perf_counter()
                    metrics.write(json.dumps({"step": step, "loss": round(loss.item(), 5), "lr": scheduler.get_last_lr()[0],
                                              "logit_scale": round(model.logit_scale.exp().item(), 3),
                                              "grad_norm": round(float(grad_norm), 4),
                                              "samples_per_s": round(cfg.batch_size * world / (toc - tic), 1)}) + "\n")
                    metrics.flush()
                tic = time.perf_counter()
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    _checkpoint(model, vocab, optimizer, scheduler, out, step, rank)
                if cfg.eval_data and cfg.eval_every and step % cfg.eval_every == 0 and rank == 0:
                    _evaluate(model, cfg, vocab, metrics, step)
                if step >= cfg.steps:
                    break
        if rank == 0:
            checkpoint.save_weights(model, vocab, out)
            if cfg.eval_data:
                _evaluate(model, cfg, vocab, metrics, step)
    finally:
        if progress:
            progress.__exit__(None, None, None)
        if metrics:
            metrics.close()
    if ui and rank == 0 and last_loss is not None:
        ui.print(f"trained {step} steps; the last batch's loss {last_loss.item():.4f} (metrics.jsonl: every "
                 f"{cfg.log_every}th step's)")
    if dist.is_initialized():
        dist.barrier()
    return out


def _lit_model(cfg: TrainConfig, tokenizer: ChineseTokenizer, vocab: Path, tars, sizes, out: Path, world: int, ui):
    """The lit-nudenet model and its batches: the frozen detector's features of every training
    photo, computed once (RUN/features/, kept for a resumed run)."""
    if world > 1:
        raise UserError(f"--model {LIT_MODEL} trains in one process: its towers are small and its detector's "
                        f"features are computed once; run it without torchrun")
    data = _features(tars, sum(sizes), out / "features" / "train.npz", ui)
    model = LitNudenet(LitConfig(features=data.features.shape[-1], vocab_size=tokenizer.vocab_size,
                                 context_length=tokenizer.context_length))
    model.start_from(data.features, Path(vocab).read_text(encoding="utf-8").splitlines())
    return model, FeatureBatches(data, tokenizer, cfg.batch_size, cfg.seed)


def _features(tars, total: int, cache: Path, ui):
    if ui is None:
        return shard_features(tars, cache, torch.get_num_threads())
    with ui.progress("train-reference: the detector's features", total=total, unit="samples") as advance:
        return shard_features(tars, cache, torch.get_num_threads(), lambda done: advance(completed=done))


def _checkpoint(model, vocab, optimizer, scheduler, out: Path, step: int, rank: int) -> None:
    if rank != 0:
        return
    folder = out / "checkpoints" / f"step_{step:08d}"
    checkpoint.save_weights(model, vocab, folder)
    checkpoint.save_state(folder, optimizer, scheduler, {"step": step})
    with atomic_path(out / "checkpoints" / "latest") as tmp:
        tmp.write_text(folder.name)


def _evaluate(model, cfg: TrainConfig, vocab: Path, metrics, step: int) -> dict:
    model.eval()
    result = retrieval(model, cfg.eval_data, vocab, batch_size=cfg.batch_size, chunk=cfg.chunk,
                       cache=Path(cfg.out) / "features" / "eval.npz")
    model.train()
    metrics.write(json.dumps({"step": step, "eval": result}) + "\n")
    metrics.flush()
    return result
