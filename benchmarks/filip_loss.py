"""Forward+backward time and peak memory of the FILIP loss, chunked vs direct, at growing batch
sizes, each measurement in its own process under a memory cap, so the batch where the direct
formula no longer fits shows as "fits": false. Prints JSON.

    python benchmarks/filip_loss.py --batches 64 128 256 512 1024 --cap-gb 12
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
cap, batch, chunk, n1, n2, d = (float(sys.argv[1]), *map(int, sys.argv[2:7]))
resource.setrlimit(resource.RLIMIT_AS, (int(cap * 2**30), int(cap * 2**30)))
import torch, torch.nn.functional as F
from wukong_data.filip.loss import filip_loss
torch.manual_seed(0)
img = F.normalize(torch.randn(batch, n1, d), dim=-1).requires_grad_()
txt = F.normalize(torch.randn(batch, n2, d), dim=-1).requires_grad_()
mask = torch.arange(n2)[None] < torch.randint(4, n2 + 1, (batch, 1))
scale = torch.tensor(2.66, requires_grad=True)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    start = time.perf_counter()
    filip_loss(img, txt, mask, scale, chunk=chunk).backward()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    print(json.dumps({"fits": True, "seconds": round(seconds, 3), "peak_extra_mb": round(peak / 1024, 1)}))
except (RuntimeError, MemoryError) as err:
    print(json.dumps({"fits": False, "error": str(err).splitlines()[0][:120]}))
"""


def measure(cap, batch, chunk, n1, n2, d) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(cap), str(batch), str(chunk), str(n1), str(n2), str(d)],
                         capture_output=True, text=True)
    if out.returncode != 0:  # killed for memory, or a crash: it did not fit
        return {"fits": False, "error": (out.stderr.strip().splitlines() or ["killed"])[-1][:120]}
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--image-tokens", type=int, default=49)  # ViT-B/32 at 224 px: 7x7 patches
    parser.add_argument("--text-tokens", type=int, default=32)  # Wukong's context length
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--cap-gb", type=float, default=12.0)
    args = parser.parse_args()
    rows = []
    for batch in args.batches:
        direct = measure(args.cap_gb, batch, 0, args.image_tokens, args.text_tokens, args.dim)
        chunked = measure(args.cap_gb, batch, args.chunk, args.image_tokens, args.text_tokens, args.dim)
        row = {"batch": batch, "direct": direct, "chunked": chunked}
        if direct.get("fits") and chunked.get("fits"):
            row["time_ratio_chunked_over_direct"] = round(chunked["seconds"] / direct["seconds"], 2)
        rows.append(row)
    first_too_big = next((r["batch"] for r in rows if not r["direct"].get("fits")), None)
    print(json.dumps({"device": "cpu", "image_tokens": args.image_tokens, "text_tokens": args.text_tokens,
                      "dim": args.dim, "chunk": args.chunk, "memory_cap_gb": args.cap_gb,
                      "direct_no_longer_fits_at_batch": first_too_big, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
