"""Which WebDataset shards a `--data` names, and their sample counts.

Apart from data.py, which loads them with torch, so that `wukong train-reference` answers a
mistaken --data before torch is imported."""
from __future__ import annotations

import glob
import tarfile
from pathlib import Path

from braceexpand import braceexpand

from ..errors import UserError
from ..storage import read_json


def shards(data: str | Path) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The WebDataset shards of `data` and their sample counts. `data` is a build directory, its
    final/ folder (anything with a sizes.json), or tar shards as open_clip users pass them: a
    path, a brace pattern (`shards/{00000..00099}.tar`) or a glob; counts then come from the
    sizes.json beside them, or from the tars' member names."""
    tars, sizes = _resolve(data)
    if sizes is None:
        beside: dict[Path, dict] = {}  # each folder's sizes.json, read once
        sizes = tuple(_count_samples(t, beside) for t in tars)
    return tars, sizes


def tar_shards(data: str | Path) -> tuple[str, ...]:
    """The tar shards `data` names, each checked to be one, not counted: counting reads every
    tar that no sizes.json names, end to end."""
    return _resolve(data)[0]


def _resolve(data: str | Path) -> tuple[tuple[str, ...], tuple[int, ...] | None]:
    path = Path(data)
    for folder in (path / "final", path):
        if (folder / "sizes.json").is_file():
            sizes = read_json(folder / "sizes.json")
            if not any(name.endswith(".tar") for name in sizes):
                raise UserError(f"{data}: its shards are Parquet only ([export].formats); training reads WebDataset "
                                f"tar shards: export with \"webdataset\" among [export].formats")
            return tuple(str(folder / name) for name in sizes), tuple(sizes.values())
    if path.is_dir():
        raise UserError(f"{data}: no sizes.json here or in final/; pass a build directory, its final/ folder, "
                        f"or tar shards (a brace pattern or glob)")
    tars = [t for pattern in braceexpand(str(data)) for t in (sorted(glob.glob(pattern)) or [pattern])]
    missing = [t for t in tars if not Path(t).is_file()]
    if missing or not tars:
        raise UserError(f"{data}: no such shard {missing[0] if missing else data!r}; pass a build directory, its "
                        f"final/ folder, or tar shards (a brace pattern or glob)")
    other = next((t for t in tars if not tarfile.is_tarfile(t)), None)
    if other:
        raise UserError(f"{data}: {other} is not a WebDataset tar shard")
    return tuple(tars), None


def _count_samples(tar: str, beside: dict[Path, dict]) -> int:
    """Samples in a shard: the sizes.json beside it if it names the shard, else distinct member keys."""
    folder = Path(tar).parent
    if folder not in beside:
        beside[folder] = read_json(folder / "sizes.json") if (folder / "sizes.json").is_file() else {}
    if Path(tar).name in beside[folder]:
        return beside[folder][Path(tar).name]
    with tarfile.open(tar) as f:
        return len({name.split(".", 1)[0] for name in f.getnames()})
