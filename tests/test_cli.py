"""What the command line promises: a version, one-line errors for user mistakes only, and Ctrl-C
reported as an interruption (and nothing else reported as one)."""
import os
import signal
import subprocess
import sys
import time

import pytest
import typer

from conftest import wukong
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
                                 str(out), "--quiet", "--workers", "1"], stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not (out / "crawl" / "_tmp").exists():  # img2dataset is under way
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1)
        os.kill(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted; run the same command again to resume" in stderr
