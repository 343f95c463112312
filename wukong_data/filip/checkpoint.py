"""Checkpoints. Weights: safetensors + config.json + vocab.txt, loadable without pickle.
Training state (optimiser, scheduler, data position, RNG) beside them, for exact resume."""
from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..storage import atomic_path, read_json, write_json_atomic
from ..errors import UserError
from .lit import KIND, LitConfig, LitNudenet
from .model import FILIP
from .presets import FilipConfig

from .files import CONFIG, STATE, VOCAB, WEIGHTS


def save_weights(model: FILIP | LitNudenet, vocab_file: str | Path, folder: Path) -> None:
    """Each file atomically, the weights last: a folder with model.safetensors is complete."""
    folder.mkdir(parents=True, exist_ok=True)
    if Path(vocab_file).resolve() != (folder / VOCAB).resolve():
        with atomic_path(folder / VOCAB) as tmp:
            shutil.copyfile(vocab_file, tmp)
    write_json_atomic(folder / CONFIG, model.cfg.to_dict())
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(tensors, str(tmp))


def load_model(folder: str | Path, device: str = "cpu") -> FILIP | LitNudenet:
    """A trained model from a run folder (or a checkpoint folder in it): weights only, no pickle."""
    folder = Path(folder)
    if not (folder / WEIGHTS).exists():
        raise UserError(f"{folder}: no {WEIGHTS}; expected a `wukong train-reference` run or checkpoint folder")
    cfg = read_json(folder / CONFIG)
    if cfg.get("kind") == KIND:
        model = LitNudenet(LitConfig(**cfg))
    else:
        cfg["mean"], cfg["std"] = tuple(cfg["mean"]), tuple(cfg["std"])
        model = FILIP(FilipConfig(**cfg))
    model.load_state_dict(load_file(str(folder / WEIGHTS), device=device))
    return model.to(device).eval()


def save_state(folder: Path, optimizer, scheduler, position: dict) -> None:
    # Data order and augmentation are seeded explicitly (data.py); torch's RNG is the only global one.
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "position": position,
             "torch_rng": torch.get_rng_state()}
    with atomic_path(folder / STATE) as tmp:
        torch.save(state, tmp)


def load_state(folder: Path, optimizer, scheduler) -> dict:
    state = torch.load(folder / STATE, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return state["position"]
