"""RI-CLPM benchmark: alliance.dynamics.riclpm.fit_riclpm against lavaan on the same data, same run.

    .venv/bin/python bench/bench_riclpm.py                          # 600 x 7 (demo size) and 100,000 x 7
    .venv/bin/python bench/bench_riclpm.py --sizes 600 --reps 3     # quick look
    .venv/bin/python bench/bench_riclpm.py --no-lavaan              # Python only

Data: alliance.dynamics.process (7 sessions, carry-over 0.40, cross-lags -0.20 / -0.10, MAR
dropout) plus ``--mcar`` (default 4 %) of the scores missing completely at random, as sessions
skipped or items unanswered in real data (intermittent gaps: about 70 missing-data patterns at
600 patients, 800 at 100,000), seed 20251201. One core: OMP/OpenBLAS/MKL threads are set to 1
here and for R.

Columns: ``python s`` is the whole ``fit_riclpm(wide, 7)`` call (pattern grouping, EM for the H1
model, optimisation, observed-information Hessian, fit indices; median over ``--reps``);
``lavaan s`` is ``lavaan::sem(model, data, missing = "fiml")`` timed inside R (it includes
lavaan's own H1 EM, optimisation and Hessian; not R's start-up or reading the CSV);
``ratio`` = lavaan s / python s; ``max |d est|`` the largest absolute difference of the
estimates; both fits must converge. Targets (issue 11): demo size < 5 s, 100,000 x 7 < 60 s.
No timing is asserted anywhere.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from alliance.dynamics.process import DropoutParams, ProcessParams, simulate_process  # noqa: E402
from alliance.dynamics.riclpm import fit_riclpm, riclpm_long_to_wide  # noqa: E402

SEED = 20251201
R_CODE = r"""
suppressPackageStartupMessages(library(lavaan))
Sys.setenv(RICLPM_SYNTAX_ONLY = "1")
source(file.path("tests", "r", "riclpm_reference.R"))
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1])
K <- as.integer(args[2]); constrained <- args[3] == "constrained"
elapsed <- system.time(fit <- sem(riclpm_syntax(K, constrained), data = data, missing = "fiml"))[["elapsed"]]
pe <- parameterEstimates(fit)
free <- parTable(fit)$free > 0
cat(jsonlite::toJSON(list(seconds = elapsed, converged = lavInspect(fit, "converged"),
  lhs = pe$lhs[free], op = pe$op[free], rhs = pe$rhs[free], est = pe$est[free]), digits = NA, auto_unbox = TRUE))
"""


def make_data(n: int, waves: int = 7, mcar: float = 0.04) -> pd.DataFrame:
    rng = np.random.default_rng(SEED)
    long, _ = simulate_process(ProcessParams(n_sessions=waves), n, rng, dropout=DropoutParams())
    wide = riclpm_long_to_wide(
        long, patient="patient", session="session", x="alliance_score", y="symptom_score", waves=waves
    )
    values = wide.to_numpy()
    values[rng.random(values.shape) < mcar] = np.nan
    return pd.DataFrame(values, columns=wide.columns)


def time_python(wide: pd.DataFrame, waves: int, constrained: bool, reps: int):
    times, fit = [], None
    for _ in range(reps):
        start = time.perf_counter()
        fit = fit_riclpm(wide, waves, constrain_paths=constrained)
        times.append(time.perf_counter() - start)
    return statistics.median(times), fit


def time_lavaan(wide: pd.DataFrame, waves: int, constrained: bool, workdir: Path) -> dict:
    csv = workdir / f"data_{len(wide)}.csv"
    if not csv.exists():
        wide.to_csv(csv, index=False, na_rep="NA", float_format="%.17g")
    script = workdir / "bench.R"
    script.write_text(R_CODE)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    out = subprocess.run(
        ["Rscript", str(script), str(csv), str(waves), "constrained" if constrained else "free"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - start
    return result


def max_difference(fit, lav: dict) -> float:
    ours = fit.lavaan_table().set_index(["lhs", "op", "rhs"])["estimate"]
    return max(
        abs(ours[(lhs, op, rhs)] - est) for lhs, op, rhs, est in zip(lav["lhs"], lav["op"], lav["rhs"], lav["est"])
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[600, 100_000])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["constrained", "free"], choices=["constrained", "free"])
    parser.add_argument("--mcar", type=float, default=0.04, help="share of scores missing completely at random")
    parser.add_argument("--no-lavaan", action="store_true")
    args = parser.parse_args(argv)
    fit_riclpm(make_data(200, 4, 0.0), 4)  # warm-up (imports, first calls)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            wide = make_data(n, mcar=args.mcar)
            for variant in args.variants:
                seconds, fit = time_python(wide, 7, variant == "constrained", args.reps)
                row = {
                    "patients": n,
                    "waves": 7,
                    "model": variant,
                    "patterns": fit.n_patterns,
                    "python s": seconds,
                    "python ok": fit.converged and not fit.flags,
                }
                if not args.no_lavaan:
                    lav = time_lavaan(wide, 7, variant == "constrained", Path(tmp))
                    row.update(
                        {
                            "lavaan s": lav["seconds"],
                            "lavaan wall s": lav["wall"],
                            "lavaan ok": lav["converged"],
                            "ratio": lav["seconds"] / seconds,
                            "max |d est|": max_difference(fit, lav),
                        }
                    )
                rows.append(row)
                print(
                    f"done: {n:,} patients, {variant}: python {seconds:.2f} s"
                    + ("" if args.no_lavaan else f", lavaan {row['lavaan s']:.2f} s"),
                    flush=True,
                )
    table = pd.DataFrame(rows)
    print()
    with pd.option_context("display.width", 200, "display.float_format", "{:.3g}".format):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
