"""Open a build's exported shards in one call, for trainers other than ours.

    >>> from wukong_data.loaders import webdataset_pipeline, scan_parquet
    >>> for image, caption in webdataset_pipeline("wukong-demo"): ...   # PIL image, str
    >>> scan_parquet("wukong-demo").select("key", "caption").collect()   # polars

Builds on object storage (s3://, gs://, ...) open the same way: webdataset reads their tars
through fsspec, polars reads their Parquet directly.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from .build import BuildDir
from .errors import UserError
from .images import IMAGE_FORMATS
from .storage import read_json, uri


def _fsspec_stream(url: str, mode: str = "rb", bufsize: int = 8192, **_):
    import fsspec

    return fsspec.open(url, mode).open()


def _open_remote_tars_with_fsspec() -> None:
    """webdataset opens http(s) and pipes itself; any other URL scheme goes through fsspec."""
    from webdataset.gopen import gopen_schemes

    for scheme in ("s3", "gcs", "abfs", "az", "hf"):
        gopen_schemes.setdefault(scheme, _fsspec_stream)


def tar_paths(build_dir: str | Path) -> list[str]:
    """The final WebDataset shards, in order, as listed in final/sizes.json."""
    final = BuildDir(build_dir).final_dir
    sizes = final / "sizes.json"
    if not sizes.exists():
        raise UserError(f"{final}: no sizes.json; run the export stage first")
    names = read_json(sizes)
    if not any(name.endswith(".tar") for name in names):
        raise UserError(f"{final}: no WebDataset shards; run the export stage with formats including webdataset")
    return [str(final / name) for name in names]


def webdataset_pipeline(build_dir: str | Path, shuffle: int = 0, image_format: str = "pil"):
    """A webdataset pipeline of (image, caption) over the final shards.

    `image_format` is any of webdataset's decoders ("pil", "rgb8", "torchrgb", ...).
    """
    import webdataset as wds

    _open_remote_tars_with_fsspec()
    dataset = wds.WebDataset(tar_paths(build_dir), shardshuffle=bool(shuffle))
    if shuffle:
        dataset = dataset.shuffle(shuffle)
    return dataset.decode(image_format).to_tuple(";".join(IMAGE_FORMATS), "txt")


def scan_parquet(build_dir: str | Path) -> pl.LazyFrame:
    """A polars LazyFrame over the final Parquet shards (key, url, caption, jpg, width, height, ...)."""
    final = BuildDir(build_dir).final_dir
    paths = sorted(final.glob("[0-9]*.parquet"))
    if not paths:
        raise UserError(f"{final}: no Parquet shards; run the export stage with formats including parquet")
    return pl.scan_parquet([uri(p) for p in paths])
