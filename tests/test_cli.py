"""What the command line promises: a version, one-line errors for user mistakes only, and Ctrl-C
reported as an interruption (and nothing else reported as one)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import typer

from conftest import final_keys, wukong
from wukong_data import __version__
from wukong_data.cli import _run
from wukong_data.errors import Incomplete, UserError


def test_version():
    assert wukong("--version").stdout.strip() == f"wukong-data {__version__}"


def test_only_user_mistakes_and_unfinished_work_become_one_line(capsys):
    for error, code in ((UserError("recipe.toml: bad key"), 2), (Incomplete("crawl incomplete: resume"), 1)):
        def fail(error=error):
            raise error
        with pytest.raises(typer.Exit) as exit_:
            _run(fail)
        assert exit_.value.exit_code == code and capsys.readouterr().err.strip() == f"error: {error}"

    def bug():
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    with pytest.raises(RuntimeError):  # a bug keeps its traceback
        _run(bug)


def test_ctrl_c_during_the_crawl_is_an_interruption(samples, tmp_path):
    from wukong_data.demo import routes_of, write_url_list
    from wukong_data.demo.server import serve

    with serve(routes_of(samples), delay=0.2) as base_url:
        urls = tmp_path / "urls.csv"
        write_url_list(samples, base_url, urls)
        out = tmp_path / "b"
        proc = subprocess.Popen([sys.executable, "-m", "wukong_data", "build", "demo", "--input", str(urls), "--out",
                                 str(out), "--quiet", "--workers", "2"], stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not (out / "crawl" / "_tmp").exists():  # img2dataset is under way
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1)
        os.kill(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted; run the same command again to resume" in stderr


def test_help_says_everything_in_plain_text():
    out = wukong("build", "--help").stdout
    assert "[input].path" in out and "<bool>" not in out and "╭" not in out


def test_stats_of_a_missing_folder_says_so(tmp_path):
    proc = wukong("stats", tmp_path / "nope", check=False)
    assert proc.returncode == 2 and "no such build directory" in proc.stderr


def test_an_output_folder_that_cannot_be_made_is_a_one_line_error(url_list, split, tiny_run, tmp_path):
    """Every command's --out, where a file stands in the way (as a folder without permission
    would for a user who is not root): one line naming the folder, before any work."""
    import polars as pl

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("王小明去北京\n", encoding="utf-8")
    key = pl.read_parquet(split / "eval" / "final" / "*.parquet")["key"][0]
    under = "Not a directory"
    for args, folder, why in ((("build", "demo", "--input", url_list, "--out", blocker / "b"), blocker / "b", under),
                              (("train-reference", "--data", split / "train", "--out", blocker / "run"), blocker / "run",
                               under),
                              (("align", split / "eval", "--checkpoint", tiny_run, "--keys", key, "--out",
                                blocker / "al"), blocker / "al", under),
                              (("queries", corpus, "--out", blocker / "q.txt"), blocker, "File exists")):
        proc = wukong(*args, check=False)
        assert proc.returncode == 2, (args[0], proc.stderr[-1000:])
        assert proc.stderr.strip().splitlines() == [
            f"error: {folder}: cannot create this folder ({why}); choose another --out"], args[0]


def test_a_damaged_manifest_sizes_or_model_config_is_a_one_line_error(demo_build, demo_recipe, url_list, tiny_run,
                                                                     tmp_path):
    """A build's manifest.json or final/sizes.json, or a run's config.json, cut short (a disk that
    filled mid-copy): each command that reads it names the file in one line."""
    import shutil

    build, run = tmp_path / "b", tmp_path / "run"
    shutil.copytree(demo_build, build)
    shutil.copytree(tiny_run, run)
    for damaged in (build / "manifest.json", build / "final" / "sizes.json", run / "config.json"):
        damaged.write_text(damaged.read_text()[:20])
    key = final_keys(demo_build)[0]
    for args, damaged in ((("build", demo_recipe, "--input", url_list, "--out", build), build / "manifest.json"),
                          (("stats", build), build / "manifest.json"),
                          (("train-reference", "--data", build, "--out", tmp_path / "r"), build / "final" / "sizes.json"),
                          (("align", demo_build, "--checkpoint", run, "--keys", key, "--out", tmp_path / "al"),
                           run / "config.json")):
        proc = wukong(*args, check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and f"{damaged}: not valid JSON" in lines[0], (args[0], lines[-3:])


def test_a_failed_build_says_so_with_the_command_that_resumes(tmp_path):
    out = tmp_path / "b"
    proc = wukong("build", "demo", "--input", tmp_path / "nope.csv", "--out", out, "--quiet", check=False)
    assert proc.returncode == 2
    crawl = json.loads(wukong("stats", out, "--json").stdout)["funnel"][0]
    assert crawl["status"] == "failed" and "nope.csv" in crawl["error"]
    assert crawl["resume"].startswith("wukong build demo --input") and crawl["resume"].endswith(f"--out {out} --quiet")
    assert "failed" in wukong("stats", out).stderr  # the table goes to the console (stderr)


def test_reports_are_for_sharing(demo_build):
    report = json.loads(wukong("stats", demo_build, "--json").stdout)
    assert report["build"] == demo_build.name and str(demo_build.parent) not in json.dumps(report)
    assert str(demo_build) in wukong("stats", demo_build, "--json", "--paths").stdout
    card = (demo_build / "final" / "README.md").read_text()
    assert str(demo_build.parent.parent) not in card


def test_a_build_prints_our_progress_only_and_every_bar_ends_at_its_total(demo_build):
    """Library chatter (img2dataset's sharding and bandwidth lines, tqdm, the tokenizer's trainer)
    goes to the build's log folder; each bar's last rendering is complete."""
    import re

    printed = (demo_build.parent / "demo.stderr").read_text(encoding="utf-8")
    for noise in ("Sharding file", "Downloading starting now", "bwm-ng", "it/s]", "s/it]", "Traceback", "WARNING"):
        assert noise not in printed, noise
    bars = re.findall(r"^(\S[^\n]*?) [━╸╺ -]* *(\d+)/(\d+)", printed, flags=re.M)
    assert {name.split(":")[0] for name, _, _ in bars} >= {"crawl", "dedupe", "filter", "score", "export"}, printed
    for name, done, total in bars:
        assert done == total, (name, done, total)
