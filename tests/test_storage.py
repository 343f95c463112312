"""A build on object storage: input read from and the build directory written to s3:// on a
local S3 server (moto, on 127.0.0.1), with the same final shards as a build on local disk, which
load back with webdataset and polars from there."""
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import final_bytes, wukong
from wukong_data.build import BuildDir

pytest.importorskip("s3fs")
pytest.importorskip("moto")


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on loopback, a bucket, and the environment every client reads."""
    import s3fs

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ALLOW_HTTP": "true"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto did not start"
                time.sleep(0.2)
        fs = s3fs.S3FileSystem()
        fs.mkdir("wukong")
        yield fs
    finally:
        server.terminate()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def test_build_on_s3_gives_the_local_shards_and_loads_back(s3, rules_recipe, url_list, rules_build):
    import polars as pl

    from wukong_data.loaders import scan_parquet, webdataset_pipeline

    s3.put(str(url_list), "wukong/lists/urls.csv")
    out = "s3://wukong/builds/b"
    wukong("build", rules_recipe, "--input", "s3://wukong/lists/urls.csv", "--out", out, "--quiet")
    s3.invalidate_cache()  # s3fs caches listings; the build wrote from another process
    remote = {p.rsplit("/", 1)[1]: s3.cat(p) for p in s3.glob("wukong/builds/b/final/[0-9]*.*")}
    assert remote == final_bytes(rules_build)
    assert not s3.glob("wukong/builds/b/**/.*tmp*")
    # img2dataset's output lands in the build; no scratch is left in the system's temp folder.
    assert s3.exists("wukong/builds/b/logs/crawl.log") and not BuildDir(out).log_dir.exists()
    rows = scan_parquet(out).select("key", "caption").collect()
    pairs = list(webdataset_pipeline(out))
    assert len(pairs) == rows.height == pl.scan_parquet(str(rules_build / "final" / "*.parquet")).select(pl.len()).collect().item()
    report = wukong("stats", out, "--json").stdout
    assert '"final_rows"' in report


def test_a_local_copy_follows_the_remote_version(s3, tmp_path):
    """Models on object storage are copied locally once per version: a rebuilt model (same URL,
    new bytes) is copied again, never served from the older copy."""
    from wukong_data.storage import local_copy, path

    s3.pipe("wukong/models/run/model.safetensors", b"first")
    first = local_copy(path("s3://wukong/models/run"), tmp_path)
    assert (first / "model.safetensors").read_bytes() == b"first"
    assert local_copy(path("s3://wukong/models/run"), tmp_path) == first  # copied once
    s3.pipe("wukong/models/run/model.safetensors", b"second, longer")
    second = local_copy(path("s3://wukong/models/run"), tmp_path)
    assert second != first and (second / "model.safetensors").read_bytes() == b"second, longer"
