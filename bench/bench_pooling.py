"""Pooling several studies: the meta-analysis against metafor, the one-stage model against lme4,
and the multiverse grid on 1 and 2 cores (nothing here is a test).

    .venv/bin/python bench/bench_pooling.py                  # all three
    .venv/bin/python bench/bench_pooling.py --part grid --cores 1 2

* ``meta``: 1,000 REML random-effects fits with Knapp-Hartung CIs of dat.bcg
  (tests/data/dat_bcg.csv) by alliance.pooling.meta.random_effects, and by metafor::rma in R, each
  timed inside its own process (R's start-up not counted); the ratio is ours / metafor's.
* ``one_stage``: the one-stage model of the demo (tests/data/one_stage.csv, 9,677 rows of five
  studies) by the pipeline's engine and by lme4::lmer, the median of 5 fits each, timed the same way.
* ``grid``: the multi-study demo (config/demo_ipd.yaml) in bench/out/pipeline/demo_ipd/, then only
  its 72 multiverse jobs again (rule fit_specification and the summary), once per ``--cores`` value:
  wall time and peak memory (bench/bench_pipeline.py's sampler).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import OUT, report, run  # noqa: E402

FITS = 1000

R_META = """
suppressMessages(library(metafor))
d <- read.csv("tests/data/dat_bcg.csv")
invisible(rma(d$yi, d$vi, method = "REML", test = "knha"))
t <- system.time(for (i in seq_len({fits})) rma(d$yi, d$vi, method = "REML", test = "knha"))[["elapsed"]]
cat(t, "\\n")
"""

R_ONE_STAGE = """
suppressMessages(library(lme4))
d <- read.csv("tests/data/one_stage.csv")
f <- symptoms ~ alliance_within_patient + alliance_between_patient + session_c +
  (1 + alliance_within_patient || study) + (1 | study:patient)
times <- sapply(1:5, function(i) system.time(lmer(f, data = d, REML = TRUE))[["elapsed"]])
cat(median(times), "\\n")
"""


def _r_seconds(code: str) -> float:
    out = subprocess.run(["Rscript", "-e", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def bench_meta() -> None:
    from alliance.pooling.meta import random_effects

    d = pd.read_csv(ROOT / "tests/data/dat_bcg.csv")
    y, se = d["yi"].to_numpy(), d["vi"].to_numpy() ** 0.5
    random_effects(y, se)
    start = time.perf_counter()
    for _ in range(FITS):
        random_effects(y, se)
    ours = time.perf_counter() - start
    theirs = _r_seconds(R_META.replace("{fits}", str(FITS)))
    print(f"\n## meta-analysis, dat.bcg, {FITS} REML + Knapp-Hartung fits")
    print(
        f"alliance.pooling.meta {ours / FITS * 1e3:.2f} ms a fit; metafor::rma {theirs / FITS * 1e3:.2f} ms a fit; "
        f"ratio {ours / theirs:.2f}"
    )


def bench_one_stage() -> None:
    from alliance.pooling.one_stage import fit_one_stage

    stacked = pd.read_csv(ROOT / "tests/data/one_stage.csv", dtype={"patient": str, "study": str})
    times = []
    for _ in range(5):
        start = time.perf_counter()
        fit_one_stage(stacked, "same_session")
        times.append(time.perf_counter() - start)
    ours = statistics.median(times)
    theirs = _r_seconds(R_ONE_STAGE)
    print(f"\n## one-stage model, {len(stacked):,} rows of {stacked['study'].nunique()} studies (median of 5 fits)")
    print(
        f"pipeline engine {ours:.2f} s (with the singular-fit policy); lme4::lmer {theirs:.2f} s; ratio {ours / theirs:.2f}"
    )


def bench_grid(cores: list[int]) -> None:
    work = OUT / "pipeline" / "demo_ipd"
    (work / "data" / "raw").mkdir(parents=True, exist_ok=True)
    link = work / "data" / "raw" / "demo_ipd"
    if not link.exists():
        link.symlink_to(ROOT / "data" / "raw" / "demo_ipd")
    shutil.copy(ROOT / "config" / "demo_ipd.yaml", work / "config.yaml")
    report(run(work, max(cores), []), f"the multi-study demo, {max(cores)} core(s)")
    curve = "results/demo_ipd/multiverse/curve.csv"
    for n in cores:
        rules = ["fit_specification", "summarise_multiverse"]
        res = run(work, n, ["--forcerun", "fit_specification", "--allowed-rules", *rules, "--", curve])
        report(res, f"the multiverse grid only (72 specifications, one job each), {n} core(s)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["meta", "one_stage", "grid", "all"], default="all")
    ap.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)
    if args.part in ("meta", "all"):
        bench_meta()
    if args.part in ("one_stage", "all"):
        bench_one_stage()
    if args.part in ("grid", "all"):
        bench_grid(args.cores)


if __name__ == "__main__":
    main()
