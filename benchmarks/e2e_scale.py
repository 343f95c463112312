"""End-to-end scale check: `wukong build` through the CLI on synthetic img2dataset output.

For each size, writes synthetic img2dataset parquet shards (synthetic_crawl.py: small JPEGs,
failed downloads, exact and near duplicates, repeated URLs, Zipf-frequent captions, captions and
sizes the filter rejects), then runs, as a subprocess in its own process group,

    python -m wukong_data build RECIPE --from-crawl CRAWL --out BUILD --quiet --workers W

with a rules-only recipe (crawl adopted, dedupe, filter without the NSFW image model, export).
While it runs, /proc is polled every 0.2 s for the build's process tree (its process group and
every descendant): summed RSS (what the spec of this check asks; shared pages count once per
process), summed PSS (shared pages split between the processes sharing them: the memory the
build really holds), the driver's own RSS, and CPU seconds. Per stage, from the manifest's
started/finished times: wall seconds, rows in, rows/s, CPU seconds and peak memory; the dedupe
stage's steps from the mtimes of their outputs. Between consecutive sizes (and first to last):
the growth exponent log(t_big / t_small) / log(rows_big / rows_small) per stage and overall
(1 = linear). The machine's load average is reported beside each build: on a shared machine wall
time is a bound, CPU seconds the steadier measure. Prints JSON.

    python benchmarks/e2e_scale.py --sizes 100000 1000000 --workers 2
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from synthetic_crawl import write_crawl

RECIPE = """\
# Rules only: the paper's rules (pipelines/wukong-100m.toml) over an adopted crawl, no models
# but the filter's text ones (fastText, rjieba, LAC).
name = "e2e-rules-only"
stages = ["crawl", "dedupe", "filter", "export"]

[crawl]
encode_format = "jpg"

[dedupe]
max_caption_count = 10

[filter]
min_side = 201
min_aspect_ratio = 0.3333
max_aspect_ratio = 3.0
nsfw_image = false

[export]
samples_per_shard = 10000
formats = ["webdataset", "parquet"]
"""
STAGES = ("crawl", "dedupe", "filter", "export")
# The dedupe stage's steps, in order, and the outputs whose newest mtime marks each one's end.
DEDUPE_STEPS = (
    ("signatures", ["_map/[0-9]*.parquet"]),
    ("exact_reduce", ["_exact/url/*.parquet", "_exact/url_by_image/*.parquet", "_exact/image/*.parquet",
                      "_exact/caption/*.parquet"]),
    ("exact_apply", ["_exact/decided/*.parquet"]),
    ("near_duplicates", ["_near/losers.parquet"]),
    ("apply", ["[0-9]*.parquet"]),
)
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
MB = 2 ** 20


def _proc_stat(pid: int) -> tuple[int, int, int, float] | None:
    """(ppid, process group, RSS bytes, CPU seconds) of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[1]), int(fields[2]), int(fields[21]) * PAGE, (int(fields[11]) + int(fields[12])) / TICKS


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class TreeMonitor(threading.Thread):
    """Samples a process tree every `interval` s: (time, summed RSS, summed PSS, root RSS, CPU s).
    The tree: processes in the root's process group, and every descendant of the root."""

    def __init__(self, root: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.samples: list[tuple[float, int, int, int, float]] = []
        self.cpu_seen: dict[int, float] = {}  # last CPU seconds of each process seen (dead ones too)
        self.processes_seen: set[int] = set()
        self._done = threading.Event()

    def sample(self) -> None:
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = _proc_stat(int(entry))
                if stat:
                    stats[int(entry)] = stat
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        tree, todo = set(), [self.root]
        while todo:
            pid = todo.pop()
            if pid in stats and pid not in tree:
                tree.add(pid)
                todo.extend(children.get(pid, []))
        tree |= {pid for pid, (_, group, _, _) in stats.items() if group == self.root}
        if not tree:
            return
        for pid in tree:
            self.cpu_seen[pid] = stats[pid][3]
        self.processes_seen |= tree
        rss = sum(stats[pid][2] for pid in tree)
        pss = sum(_pss(pid) for pid in tree)
        root_rss = stats[self.root][2] if self.root in stats else 0
        self.samples.append((time.time(), rss, pss, root_rss, sum(self.cpu_seen.values())))

    def run(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()

    def cpu_at(self, t: float) -> float:
        """CPU seconds of the tree by time t (the last sample at or before it)."""
        before = [s[4] for s in self.samples if s[0] <= t]
        return before[-1] if before else 0.0

    def peaks(self, start: float = 0.0, end: float = math.inf) -> dict:
        window = [s for s in self.samples if start <= s[0] <= end] or [(0, 0, 0, 0, 0)]
        return {"peak_rss_mb": round(max(s[1] for s in window) / MB, 1),
                "peak_pss_mb": round(max(s[2] for s in window) / MB, 1),
                "driver_peak_rss_mb": round(max(s[3] for s in window) / MB, 1)}


def _newest_mtime(folder: Path, patterns: list[str]) -> float | None:
    times = [p.stat().st_mtime for pattern in patterns for p in folder.glob(pattern)]
    return max(times) if times else None


def dedupe_steps(build: Path, started: float) -> dict:
    """Seconds of each dedupe step, from the newest mtime of its outputs (to about 10 ms)."""
    steps, previous = {}, started
    for name, patterns in DEDUPE_STEPS:
        end = _newest_mtime(build / "dedupe", patterns)
        if end is not None:
            steps[name] = round(end - previous, 2)
            previous = end
    return steps


def run_build(recipe: Path, crawl: Path, out: Path, workers: int, engine: str = "local") -> dict:
    """`wukong build` through the CLI, watched; its wall/CPU time, memory and per-stage figures."""
    command = [sys.executable, "-m", "wukong_data", "build", str(recipe), "--from-crawl", str(crawl), "--out", str(out),
               "--quiet", "--workers", str(workers)] + (["--engine", engine] if engine != "local" else [])
    load_before = os.getloadavg()
    cpu_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    monitor = TreeMonitor(process.pid)
    monitor.start()
    output = process.communicate()[0].decode(errors="replace")
    wall = time.time() - start
    monitor.stop()
    if process.returncode != 0:
        raise SystemExit(f"build failed (exit {process.returncode}): {' '.join(command)}\n{output[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    manifest = json.loads((out / "manifest.json").read_text())
    stages = {}
    for name in STAGES:
        entry = manifest["stages"][name]
        seconds = entry["finished"] - entry["started"]
        stages[name] = {
            "seconds": round(seconds, 2), "rows_in": entry["rows_in"], "kept": entry["kept"],
            "rows_per_s": round(entry["rows_in"] / seconds, 1) if seconds > 0 else None,
            "cpu_s": round(monitor.cpu_at(entry["finished"]) - monitor.cpu_at(entry["started"]), 1),
            **monitor.peaks(entry["started"], entry["finished"]),
            "rejected": entry["rejected"],
        }
    stages["dedupe"]["steps_s"] = dedupe_steps(out, manifest["stages"]["dedupe"]["started"])
    first = manifest["stages"][STAGES[0]]["started"]
    rows = manifest["stages"]["crawl"]["rows_in"]
    final = out / "final"
    return {
        "command": " ".join(command[1:]),
        "wall_s": round(wall, 2),
        "stages_s": round(manifest["stages"][STAGES[-1]]["finished"] - first, 2),
        "startup_and_teardown_s": round(wall - (manifest["stages"][STAGES[-1]]["finished"] - first), 2),
        "rows_per_s": round(rows / wall, 1),
        # Waited-for descendants (the build and its pool workers); a detached process is not in it.
        "cpu_s": round(after.ru_utime + after.ru_stime - cpu_children.ru_utime - cpu_children.ru_stime, 1),
        "cpu_s_sampled": round(monitor.cpu_at(math.inf), 1),
        **monitor.peaks(),
        "processes_seen": len(monitor.processes_seen),
        "final_rows": manifest["stages"]["export"]["kept"],
        "final_bytes": sum(p.stat().st_size for p in final.iterdir()),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "stages": stages,
    }


def growth(small: dict, big: dict) -> dict:
    """log(t_big / t_small) / log(rows_big / rows_small) per stage and overall (1 = linear)."""
    ratio = math.log(big["rows"] / small["rows"])

    def exponent(a, b):
        return round(math.log(b / a) / ratio, 3) if a and b and a > 0 and b > 0 else None

    sb, bb = small["build"], big["build"]
    out = {"rows": [small["rows"], big["rows"]]}
    out.update({name: exponent(sb["stages"][name]["seconds"], bb["stages"][name]["seconds"]) for name in STAGES})
    out["dedupe_steps"] = {step: exponent(sb["stages"]["dedupe"]["steps_s"].get(step),
                                          bb["stages"]["dedupe"]["steps_s"].get(step)) for step, _ in DEDUPE_STEPS}
    out["stages_total"] = exponent(sb["stages_s"], bb["stages_s"])
    out["wall"] = exponent(sb["wall_s"], bb["wall_s"])
    out["cpu"] = exponent(sb["cpu_s"], bb["cpu_s"])
    out["cpu_per_stage"] = {name: exponent(sb["stages"][name]["cpu_s"], bb["stages"][name]["cpu_s"]) for name in STAGES}
    out["peak_pss"] = exponent(sb["peak_pss_mb"], bb["peak_pss_mb"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--shard-rows", type=int, default=10_000)
    parser.add_argument("--work", type=Path, default=None, help="work folder [default: a temporary one, removed]")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic crawls and builds")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="wukong-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    recipe = work / "rules-only.toml"
    recipe.write_text(RECIPE)
    result = {"cpus": os.cpu_count(), "workers": args.workers, "image_size": args.image_size,
              "shard_rows": args.shard_rows, "recipe": RECIPE, "sizes": []}
    try:
        for rows in sorted(args.sizes):
            crawl, out = work / f"crawl-{rows}", work / f"build-{rows}"
            shutil.rmtree(crawl, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
            synthetic = write_crawl(crawl, rows, shard_rows=args.shard_rows, image_size=args.image_size)
            synthetic.pop("rates")  # printed once below
            build = run_build(recipe, crawl, out, args.workers)
            result["sizes"].append({"rows": rows, "synthetic": synthetic, "build": build})
            print(f"{rows} rows: {build['wall_s']} s", file=sys.stderr)
            if not args.keep:
                shutil.rmtree(crawl, ignore_errors=True)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    from synthetic_crawl import RATES

    result["synthetic_rates"] = RATES
    sizes = result["sizes"]
    result["growth_exponent"] = [growth(a, b) for a, b in zip(sizes, sizes[1:])]
    if len(sizes) > 2:
        result["growth_exponent"].append(growth(sizes[0], sizes[-1]))
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
