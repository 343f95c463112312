"""The curator's loop at size: what a re-run after a dedupe edit costs beside a fresh build with
the edited recipe, in the same process, on the same synthetic crawl. JSON.

A synthetic img2dataset crawl (synthetic_crawl.py) is adopted and built with the rules recipe of
e2e_scale.py (dedupe, the filter's text rules with person names masked, export); then
`[dedupe].max_caption_count` is edited and the same command run again on the same build (dedupe's
signatures and the filter's decisions of the rows that enter it again are reused), and a fresh
build is made with the edited recipe. Both end with the same final shards (checked); per stage,
wall seconds from the manifest and the ratio re-run / fresh.

    python benchmarks/rerun.py --rows 50000 --workers 2
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from e2e_scale import RECIPE
from synthetic_crawl import write_crawl

EDIT = ("max_caption_count = 10", "max_caption_count = 3")


def build(recipe: Path, crawl: Path, out: Path, workers: int) -> dict:
    start, began = time.perf_counter(), time.time()
    proc = subprocess.run([sys.executable, "-m", "wukong_data", "build", str(recipe), "--from-crawl", str(crawl),
                           "--out", str(out), "--workers", str(workers), "--quiet"], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"build of {out} failed:\n{proc.stderr[-2000:]}")
    stages = {s: v for s, v in json.loads((out / "manifest.json").read_text())["stages"].items()
              if v["started"] >= began - 1}  # the stages this run did
    reused = re.search(r"filter: ([\d,]+) rows reused from the last run,\s+([\d,]+) computed", proc.stderr)
    return {"seconds": round(time.perf_counter() - start, 1),
            "stage_seconds": {s: round(v["finished"] - v["started"], 1) for s, v in stages.items()},
            "filter_rows_reused": int(reused[1].replace(",", "")) if reused else 0,
            "filter_rows_computed": int(reused[2].replace(",", "")) if reused else None}


def final_bytes(out: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted((out / "final").glob("[0-9]*.*"))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    assert EDIT[0] in RECIPE
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_crawl(tmp / "crawl", args.rows, shard_rows=max(10, min(10_000, args.rows // 8)))
        (tmp / "rules.toml").write_text(RECIPE, encoding="utf-8")
        (tmp / "edited.toml").write_text(RECIPE.replace(*EDIT), encoding="utf-8")
        first = build(tmp / "rules.toml", tmp / "crawl", tmp / "a", args.workers)
        rerun = build(tmp / "edited.toml", tmp / "crawl", tmp / "a", args.workers)
        fresh = build(tmp / "edited.toml", tmp / "crawl", tmp / "b", args.workers)
        same = final_bytes(tmp / "a") == final_bytes(tmp / "b")
    ratios = {s: round(rerun["stage_seconds"][s] / fresh["stage_seconds"][s], 3)
              for s in ("dedupe", "filter") if fresh["stage_seconds"].get(s)}
    print(json.dumps({"rows": args.rows, "workers": args.workers, "edit": f"[dedupe] {EDIT[0]} -> {EDIT[1]}",
                      "first_build": first, "rerun_after_edit": rerun, "fresh_build_with_edit": fresh,
                      "rerun_to_fresh_stage_seconds": ratios,
                      "rerun_to_fresh_seconds": round(rerun["seconds"] / fresh["seconds"], 3),
                      "same_final_bytes": same}, indent=2))
    if not same:
        sys.exit("the re-run's final shards differ from the fresh build's")


if __name__ == "__main__":
    main()
