"""Synthetic generator (and optionally validation) throughput and peak memory at several sizes.

Each size runs in its own subprocess so peak RSS is measured separately; ratios are printed against the
first (reference) size of the same run: rows/s ratio near 1 means linear scaling, memory ratio near 1
means memory is bounded by the chunk size, not by the number of impressions.

    .venv/bin/python benchmarks/bench_generator.py --sizes 1000000 10000000 [--validate]
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(size: int, out: Path, chunk_rows: int, with_validation: bool) -> dict:
    """Generate `size` impressions (then validate them) in this process; returns timings and peak RSS."""
    sys.path.insert(0, str(REPO))
    from unisr_data.synthetic import SyntheticConfig, generate

    config = replace(SyntheticConfig.default(), n_impressions=size, chunk_rows=chunk_rows)
    started = time.perf_counter()
    counts = generate(config, out / "landing")
    result = {"size": size, "rows": counts["impressions"], "generate_s": time.perf_counter() - started,
              "generate_peak_mib": peak_rss_mib()}
    if with_validation:
        from unisr_data.validation import validate

        started = time.perf_counter()
        report = validate(out / "landing", out / "raw", out / "quarantine")
        result["validate_s"] = time.perf_counter() - started
        result["validated_clean"] = report.tables["impressions"].clean
        result["peak_mib"] = peak_rss_mib()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000],
                        help="impressions per run; the first is the reference")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--validate", action="store_true", help="also time validate() on the generated data")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.out, args.chunk_rows, args.validate)))
        return

    results = []
    for size in args.sizes:
        work = Path(tempfile.mkdtemp(prefix=f"bench-gen-{size}-"))
        try:
            command = [sys.executable, __file__, "--child", str(size), "--out", str(work),
                       "--chunk-rows", str(args.chunk_rows)]
            output = subprocess.run(command + (["--validate"] if args.validate else []), check=True,
                                    capture_output=True, text=True)
            results.append(json.loads(output.stdout.strip().splitlines()[-1]))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    ref = results[0]
    print(f"{'impressions':>12} {'gen s':>8} {'gen rows/s':>12} {'gen peak MiB':>13}"
          + (f" {'val s':>8} {'val rows/s':>12} {'peak MiB':>9}" if args.validate else ""))
    for r in results:
        line = (f"{r['rows']:>12,} {r['generate_s']:>8.1f} {r['rows'] / r['generate_s']:>12,.0f} "
                f"{r['generate_peak_mib']:>13,.0f}")
        if args.validate:
            line += f" {r['validate_s']:>8.1f} {r['rows'] / r['validate_s']:>12,.0f} {r['peak_mib']:>9,.0f}"
        print(line)
    for r in results[1:]:
        scale = r["rows"] / ref["rows"]
        print(f"{r['rows']:,} vs {ref['rows']:,} ({scale:.0f}x rows): generate rows/s ratio "
              f"{(r['rows'] / r['generate_s']) / (ref['rows'] / ref['generate_s']):.2f}, "
              f"peak memory ratio {r['generate_peak_mib'] / ref['generate_peak_mib']:.2f}")
        if args.validate:
            print(f"    validate rows/s ratio {(r['rows'] / r['validate_s']) / (ref['rows'] / ref['validate_s']):.2f}, "
                  f"peak memory ratio (generate+validate) {r['peak_mib'] / ref['peak_mib']:.2f}")


if __name__ == "__main__":
    main()
