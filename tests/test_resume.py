"""A build killed with SIGKILL, resumed, ends with exactly the result of an uninterrupted one."""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import final_keys, wukong
from wukong_data.demo import routes_of, write_url_list
from wukong_data.demo.server import serve

RECIPE = """
stages = ["crawl", "export"]
[crawl]
processes = 2
threads = 8
samples_per_shard = 100
timeout = 10
[export]
samples_per_shard = 4
"""


def _kill_when(args, ready, timeout=120.0):
    """Start `wukong build`, SIGKILL its whole process group as soon as ready() holds."""
    proc = subprocess.Popen([sys.executable, "-m", "wukong_data", *map(str, args)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "the build finished before it could be killed"
        assert time.monotonic() < deadline, "the build never reached the point to kill it"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    path = tmp_path_factory.mktemp("recipe") / "resume.toml"
    path.write_text(RECIPE)
    return path


def _assert_same_final(resumed, reference):
    keys = final_keys(resumed)
    assert len(keys) == len(set(keys)), "duplicate keys in final/"
    assert keys == final_keys(reference)
    for path in sorted((reference / "final").glob("[0-9]*.*")):  # the same shards, byte for byte
        assert (resumed / "final" / path.name).read_bytes() == path.read_bytes(), path.name
    assert not list((resumed / "final").glob(".*")), "temporary files left in final/"


def test_resume_after_sigkill_mid_crawl(samples, recipe, tmp_path):
    # A slow server, so that the crawl is surely under way, not finished, when it is killed.
    with serve(routes_of(samples), delay=0.15) as base_url:
        urls = tmp_path / "urls.csv"
        write_url_list(samples, base_url, urls)
        reference, killed = tmp_path / "reference", tmp_path / "killed"
        wukong("build", recipe, "--input", urls, "--out", reference, "--quiet")
        _kill_when(["build", recipe, "--input", urls, "--out", killed, "--quiet"],
                   lambda: len(list((killed / "crawl").glob("*_stats.json"))) >= 1)
        assert len(list((killed / "crawl").glob("*_stats.json"))) < 4
        assert not (killed / "final").exists()
        wukong("build", recipe, "--input", urls, "--out", killed, "--quiet")
    _assert_same_final(killed, reference)


def test_resume_after_sigkill_mid_export(url_list, recipe, tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    wukong("build", recipe, "--input", url_list, "--out", reference, "--quiet", "--workers", "1")
    wukong("build", recipe, "--input", url_list, "--out", killed, "--stage", "crawl", "--quiet")
    _kill_when(["build", recipe, "--input", url_list, "--out", killed, "--stage", "export", "--workers", "1"],
               lambda: len(list((killed / "final").glob("*.tar"))) >= 3)
    written = len(list((killed / "final").glob("*.tar")))
    assert written < 77 and not (killed / "final" / "sizes.json").exists()
    wukong("build", recipe, "--input", url_list, "--out", killed, "--quiet")
    _assert_same_final(killed, reference)
    assert (killed / "final" / "sizes.json").read_text() == (reference / "final" / "sizes.json").read_text()
