"""Every benchmark runs at its smallest size (its figures are not checked here: the scripts print
them for the README); those that need a GPU or a fixed photo set at least import and answer --help."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import namedev

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SMALLEST = {
    "e2e_scale.py": ["--sizes", "100", "--workers", "1"],
    "filip_loss.py": ["--batches", "8", "--dim", "32"],
    "filter.py": ["--captions", "2000", "--images", "4"],
    "gpu_nsfw.py": ["--count", "32"],
    "nsfw_benign.py": ["--photos", "16"],
    "score.py": ["--pairs", "32", "--batch-size", "16", "--models", "tiny"],
    "stats.py": ["--rows", "500", "--per-shard", "250"],
}
# A GPU (the machine lent for device checks), the photo set at its fixed size (5 minutes), or
# builds and trainings that take a minute or more even at the smallest size, where the tests
# already run the same paths (CI's 25 minutes): these import and answer --help.
HELP_ONLY = ["crawl.py", "engines.py", "gpu_check.py", "gpu_near_search.py", "gpu_score.py", "gpu_train.py", "near_dup_signatures.py",
             "real_pairs.py", "rerun.py", "scale.py", "synthetic_crawl.py", "train_step.py"]
FLICKR = BENCHMARKS.parents[1] / "shared" / "flickr8k-cn"


def test_every_benchmark_is_listed():
    listed = set(SMALLEST) | set(HELP_ONLY) | {"unguarded_downloader.py"}  # a helper crawl.py imports
    assert {p.name for p in BENCHMARKS.glob("*.py")} == listed


@pytest.mark.parametrize("name", sorted(SMALLEST))
def test_benchmark_runs_at_its_smallest_size(name, tmp_path):
    if name == "filter.py" and not (namedev.real_text() / "extra").is_dir():
        pytest.skip(f"no shared real text at {namedev.real_text()}")
    if name == "nsfw_benign.py" and not (FLICKR / "images").is_dir():
        pytest.skip(f"no shared Flickr8k-CN photos at {FLICKR}")
    args = SMALLEST[name]
    proc = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    json.loads(proc.stdout[proc.stdout.index("{"):])  # it printed its JSON


# Each script run as `python SCRIPT --help` would, all in one process (torch is imported once).
ANSWERS_HELP = """
import contextlib, io, os, runpy, sys
for script in sys.argv[1:]:
    sys.path.insert(0, os.path.dirname(script))  # as `python SCRIPT` puts its folder first
    sys.argv, out = [script, "--help"], io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(script, run_name="__main__")
    except SystemExit as end:
        assert end.code in (0, None) and "usage" in out.getvalue(), (script, end.code, out.getvalue()[-500:])
    else:
        raise AssertionError(f"{script} --help did not end")
"""


def test_benchmarks_import_and_answer_help(tmp_path):
    proc = subprocess.run([sys.executable, "-c", ANSWERS_HELP, *(str(BENCHMARKS / name) for name in HELP_ONLY)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
