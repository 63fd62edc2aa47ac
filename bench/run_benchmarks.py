"""`make bench`: every benchmark under bench/, in turn (slow; nothing here is a test).

1. bench/bench_suite.py     -- the model stage: every model and stratum of the suite, mixedlm vs
   lme4 on the same data in the same run, at ~20k, ~200k, ~1M rows (bench/out/bench_suite.csv)
2. bench/bench_engines.py   -- the two model structures that matter for speed, per engine
   (statsmodels too) vs lme4, at ~20k, ~200k, ~1M rows
3. bench/bench_pipeline.py  -- the whole pipeline on the 1M-row scale data (made first by
   bench/make_scale_data.py if data/raw/scale/ is missing), 2 cores, then the per-stratum jobs
   on 1 vs 2 cores
4. bench/bench_pooling.py   -- several studies: the meta-analysis vs metafor, the one-stage model vs
   lme4, the multi-study demo's multiverse grid on 1 and 2 cores

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
    run(str(BENCH / "bench_suite.py"))
    run(str(BENCH / "bench_engines.py"))
    if not (ROOT / "data" / "raw" / "scale" / "sessions.csv").exists():
        run(str(BENCH / "make_scale_data.py"))
    run(str(BENCH / "bench_pipeline.py"), "--configfile", "config/scale.yaml", "--cores", "2")
    run(str(BENCH / "bench_pipeline.py"), "--configfile", "config/scale.yaml", "--strata-only", "--cores", "1", "2")
    run(str(BENCH / "bench_pooling.py"))


if __name__ == "__main__":
    main()
