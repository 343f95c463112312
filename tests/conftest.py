import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

# Tests import img2dataset here too (test_adopt runs its download): albumentations must not
# check the network for updates at import.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from wukong_data.demo import demo_samples, routes_of, write_url_list  # noqa: E402
from wukong_data.demo.server import serve  # noqa: E402

ASSETS = Path(__file__).parent / "assets"


def wukong(*args, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run the real CLI in a fresh process, as a user would."""
    proc = subprocess.run([sys.executable, "-m", "wukong_data", *map(str, args)], capture_output=True,
                          text=True, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"wukong {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def samples():
    return demo_samples()


@pytest.fixture(scope="session")
def server(samples):
    """The demo's images on a real loopback HTTP server."""
    with serve(routes_of(samples)) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def url_list(server, samples, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("urls") / "urls.csv"
    write_url_list(samples, server, path)
    return path


@pytest.fixture(scope="session")
def demo_recipe(tmp_path_factory) -> Path:
    """The bundled demo recipe as `wukong demo` runs it: the drawings scored by the model that
    ships for them (wukong_data/demo/scorer) instead of one trained on the spot."""
    from importlib import resources

    text = (resources.files("wukong_data.pipelines") / "demo.toml").read_text(encoding="utf-8")
    scorer = resources.files("wukong_data.demo") / "scorer"
    assert "bootstrap_steps = 200" in text
    path = tmp_path_factory.mktemp("demo-recipe") / "demo.toml"
    path.write_text(text.replace("bootstrap_steps = 200", f'bootstrap_steps = 0\ncheckpoint = "{scorer}"'), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def demo_build(url_list, demo_recipe, tmp_path_factory) -> Path:
    """A whole build of the demo URL list, as `wukong demo` makes it; what it printed (not
    --quiet, to a pipe) is kept beside it in demo.stderr."""
    out = tmp_path_factory.mktemp("builds") / "demo"
    proc = wukong("build", demo_recipe, "--input", url_list, "--out", out)
    (out.parent / "demo.stderr").write_text(proc.stderr + proc.stdout, encoding="utf-8")
    return out


def final_keys(build: Path) -> list[str]:
    return pl.scan_parquet(sorted((build / "final").glob("*.parquet"))).select("key").collect()["key"].to_list()


def input_rows(build: Path) -> int:
    return json.loads((build / "input" / "_done.json").read_text())["rows"]


def crawl_table(build: Path) -> pl.DataFrame:
    return pl.scan_parquet(sorted((build / "crawl").glob("[0-9]*.parquet"))).drop("jpg").collect()


@pytest.fixture(scope="session")
def split(demo_build, tmp_path_factory):
    """The demo's final shards split into a training build and a held-out one."""
    import shutil

    root = tmp_path_factory.mktemp("split")
    sizes = json.loads((demo_build / "final" / "sizes.json").read_text())
    names = sorted(sizes)
    for part, chosen in {"train": names[:-1], "eval": names[-1:]}.items():
        final = root / part / "final"
        final.mkdir(parents=True)
        for i, name in enumerate(chosen):
            shutil.copy(demo_build / "final" / name, final / f"{i:05d}.tar")
            shutil.copy(demo_build / "final" / name.replace(".tar", ".parquet"), final / f"{i:05d}.parquet")
        (final / "sizes.json").write_text(json.dumps({f"{i:05d}.tar": sizes[n] for i, n in enumerate(chosen)}))
    return root


@pytest.fixture(scope="session")
def tiny_run(split, tmp_path_factory):
    """A tiny FILIP model really trained (CPU) on the training split, evaluated on the held-out one."""
    run = tmp_path_factory.mktemp("runs") / "tiny"
    wukong("train-reference", "--data", split / "train", "--eval-data", split / "eval", "--out", run,
           "--steps", "100", "--batch-size", "32", "--lr", "1e-3", "--warmup", "20", "--workers", "1", "--quiet")
    return run


RULES_RECIPE = """
stages = ["crawl", "dedupe", "filter", "export"]
[crawl]
allow_addresses = ["127.0.0.1"]
samples_per_shard = 25
threads = 16
[filter]
nsfw_image = false
[export]
samples_per_shard = 64
"""


@pytest.fixture(scope="session")
def rules_recipe(tmp_path_factory) -> Path:
    """A rules-only recipe (no model) with small crawl shards, for comparing engines and crawls."""
    path = tmp_path_factory.mktemp("rules") / "rules.toml"
    path.write_text(RULES_RECIPE)
    return path


@pytest.fixture(scope="session")
def rules_build(rules_recipe, url_list, tmp_path_factory) -> Path:
    """The demo URL list built with the rules-only recipe on the local engine: the reference."""
    out = tmp_path_factory.mktemp("rules-build") / "b"
    wukong("build", rules_recipe, "--input", url_list, "--out", out, "--workers", 2, "--quiet")
    return out


def final_bytes(build: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted((build / "final").glob("[0-9]*.*"))}
