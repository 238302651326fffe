"""Peak memory of `ddpm sample` at n = 10⁵ and 10⁷ points: streaming to the .npy in chunks keeps it flat.

Fits a small model once (T = 100, 2,000 steps), then runs `ddpm sample MODEL -n N --out FILE.npy
--sampler ddim --steps 10` in a fresh process for each N and reads the child's peak resident set size
(getrusage). Writes benchmarks/results/sample_memory.{json,md}.

    python3 benchmarks/sample_memory.py [--n 100000 10000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def peak_rss_mb(argv) -> tuple[float, float]:
    """Run argv in a fresh child process; its peak RSS in MB (Linux reports ru_maxrss in KB) and wall time."""
    t0 = time.perf_counter()
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code] + argv, check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1]) / 1024, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[100_000, 10_000_000])
    p.add_argument("--out", default=os.path.join(HERE, "results", "sample_memory"))
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "ddpm", "fit", "moons", "--out", f"{tmp}/m", "--T", "100",
                        "--steps", "2000", "--quiet"], check=True, stdout=subprocess.DEVNULL)
        for n in args.n:
            f = f"{tmp}/s{n}.npy"
            mb, wall = peak_rss_mb([sys.executable, "-m", "ddpm", "sample", f"{tmp}/m/model.npz", "-n", str(n),
                                    "--out", f, "--sampler", "ddim", "--steps", "10", "--quiet"])
            size = os.path.getsize(f) / 2**20
            rows.append({"n": n, "peak_rss_mb": mb, "file_mb": size, "wall_seconds": wall})
            print(f"n = {n:>10,}  peak RSS {mb:7.1f} MB  file {size:8.1f} MB  {wall:.0f}s", flush=True)
            os.unlink(f)
    ratio = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as fh:
        json.dump({"rows": rows, "ratio_last_to_first": ratio}, fh, indent=2)
    lines = ["| n | peak RSS (MB) | file (MB) | wall (s) |", "|---|---|---|---|"]
    lines += [f"| {r['n']:,} | {r['peak_rss_mb']:.0f} | {r['file_mb']:.0f} | {r['wall_seconds']:.0f} |" for r in rows]
    with open(args.out + ".md", "w") as fh:
        fh.write("`python3 benchmarks/sample_memory.py` (DDIM, 10 steps, 2-D)\n\n" + "\n".join(lines)
                 + f"\n\npeak RSS at n = {rows[-1]['n']:,} / at n = {rows[0]['n']:,}: {ratio:.2f}\n")
    print(f"ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
