import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from wukong_data.demo import demo_samples, routes_of, write_url_list
from wukong_data.demo.server import serve

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
def demo_build(url_list, tmp_path_factory) -> Path:
    """A whole build of the demo URL list with the bundled demo recipe."""
    out = tmp_path_factory.mktemp("builds") / "demo"
    wukong("build", "demo", "--input", url_list, "--out", out, "--quiet")
    return out


def final_keys(build: Path) -> list[str]:
    return pl.scan_parquet(sorted((build / "final").glob("*.parquet"))).select("key").collect()["key"].to_list()


def input_rows(build: Path) -> int:
    return json.loads((build / "input" / "_done.json").read_text())["rows"]


def crawl_table(build: Path) -> pl.DataFrame:
    return pl.scan_parquet(sorted((build / "crawl").glob("[0-9]*.parquet"))).drop("jpg").collect()
