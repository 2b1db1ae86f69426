"""Latency of what must answer at once: `tfft config show`, `tfft --help`, offline failures.

These were timing asserts inside tests (issue 17, defect 7); a shared machine makes such asserts
flaky, so the figures live here. Prints a markdown table: command, median and max of N runs.

    python benchmarks/bench_cli_latency.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _time(argv: list[str], repeats: int, ok_codes: tuple[int, ...] = (0,)) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode not in ok_codes:
            raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-500:]}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    (folder / "c.yaml").write_text("name: demo\n")
    py = [sys.executable, "-m", "tfft.cli.main"]
    rows = [
        ("tfft --help", _time(py + ["--help"], args.repeats)),
        ("tfft config show c.yaml --set data.batch_size=8",
         _time(py + ["config", "show", str(folder / "c.yaml"), "--set", "data.batch_size=8"], args.repeats)),
        ("tfft train with a missing tfds dataset (exit 2)",
         _time(py + ["train", str(folder / "c.yaml"), "--set", "data.source=tfds:tf_flowers",
                     "--run-dir", str(folder / "run")], args.repeats, ok_codes=(2,))),
    ]
    print("| command | median s | max s |")
    print("| --- | ---: | ---: |")
    for name, times in rows:
        print(f"| `{name}` | {statistics.median(times):.2f} | {max(times):.2f} |")


if __name__ == "__main__":
    main()
