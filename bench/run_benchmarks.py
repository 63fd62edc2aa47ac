"""`make bench`: every benchmark under bench/, in turn (slow; nothing here is a test).

1. bench/bench_engines.py   -- model stage per engine vs lme4 at ~20k, ~200k, ~1M rows
2. bench/bench_models.py    -- the model suite (model-suite engineer's), if present
3. bench/bench_pipeline.py  -- the whole pipeline on the 1M-row scale data (made first by
   bench/make_scale_data.py if data/raw/scale/ is missing), 2 cores, then the per-stratum jobs
   on 1 vs 2 cores

Output goes to stdout; results and scratch files to bench/out/ (git-ignored).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


def run(*args: str) -> None:
    print(f"\n# {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, *args], check=True, cwd=ROOT)


def main() -> None:
    run(str(BENCH / "bench_engines.py"))
    if (BENCH / "bench_models.py").exists():
        run(str(BENCH / "bench_models.py"))
    if not (ROOT / "data" / "raw" / "scale" / "sessions.csv").exists():
        run(str(BENCH / "make_scale_data.py"))
    run(str(BENCH / "bench_pipeline.py"), "--configfile", "config/scale.yaml", "--cores", "2")
    run(str(BENCH / "bench_pipeline.py"), "--configfile", "config/scale.yaml", "--strata-only", "--cores", "1", "2")


if __name__ == "__main__":
    main()
