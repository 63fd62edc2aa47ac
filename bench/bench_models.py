"""Benchmark of the model stage: time and peak memory of the suite's fit_model on simulated data
of about 20k, 200k and 1M rows, beside lme4's time on the same data in the same run.

Run on demand (not part of the tests):

    .venv/bin/python bench/bench_models.py                 # 20k and 200k
    .venv/bin/python bench/bench_models.py --sizes 20k 200k 1M
    .venv/bin/python bench/bench_models.py --models three_level --no-r

Data: bench/model_data.py (the pipeline's simulator, TrialDesign with 100 patients per
therapist and 17 / 171 / 857 therapists; cached under bench/out/data/).  Each (size, model) is
fitted in a fresh Python process (alliance.suite.fit_model with the config's default optimiser
sequences, REML), which reports the wall time of the fit and its peak resident memory
(getrusage ru_maxrss, whole process) and the memory before the fit.  lme4 (lmer, REML, default
control) fits the same rows from a CSV in a temp dir; its time excludes reading the CSV, its
memory is R's "max used" heap from gc().  Wall and CPU seconds are both reported (CPU time is
the fairer ratio when other jobs share the machine).  Results: a table on stdout and
bench/out/bench_models.csv.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

OUT = ROOT / "bench" / "out"

MODELS = {
    # methods.md 5.2: two levels, correlated patient intercept and within slope
    "same_session": {
        "name": "same_session",
        "outcome": "symptoms",
        "fixed": ["alliance_within_patient", "alliance_between_patient", "session_c"],
        "random": [{"group": "patient", "slopes": ["alliance_within_patient"], "correlated": True}],
        "roles": {"alliance_within_patient": "within_patient", "alliance_between_patient": "between_patient"},
    },
    # methods.md 5.4 (same-session outcome): therapist intercept, patient intercept and slope (||)
    "three_level": {
        "name": "three_level",
        "outcome": "symptoms",
        "fixed": ["alliance_within_patient", "alliance_patient_within_therapist", "alliance_between_therapist", "session_c"],
        "random": [
            {"group": "therapist"},
            {"group": "patient", "nested_in": "therapist", "slopes": ["alliance_within_patient"], "correlated": False},
        ],
        "roles": {"alliance_within_patient": "within_patient"},
    },
}
LME4_FORMULA = {
    "same_session": "symptoms ~ alliance_within_patient + alliance_between_patient + session_c + (1 + alliance_within_patient | patient)",
    "three_level": (
        "symptoms ~ alliance_within_patient + alliance_patient_within_therapist + alliance_between_therapist + session_c"
        " + (1 | therapist) + (1 + alliance_within_patient || therapist:patient)"
    ),
}
R_SCRIPT = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[[1]], stringsAsFactors = FALSE)
invisible(gc(reset = TRUE))
st <- system.time(fit <- lmer(as.formula(args[[2]]), data = d, REML = TRUE))
g <- gc()
cat(sprintf('{"seconds": %.3f, "cpu_seconds": %.3f, "max_heap_mb": %.1f, "loglik": %.6f, "n_obs": %d, "messages": %d}\n',
            st[["elapsed"]], st[["user.self"]] + st[["sys.self"]], sum(g[, ncol(g)]), as.numeric(logLik(fit)), nobs(fit),
            length(fit@optinfo$conv$lme4$messages)))
"""


def _maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024.0 if sys.platform != "darwin" else rss / 2**20


def child(size: str, model: str) -> dict:
    """Fit one model on one size in this process; report time and memory."""
    import warnings

    from model_data import load

    from alliance.suite import fit_model

    data = load(size)
    before = _maxrss_mb()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = fit_model(MODELS[model], data, None, {})
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    fit = tables["fit"]["fit"]
    return {
        "seconds": seconds,
        "cpu_seconds": (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime),
        "peak_rss_mb": _maxrss_mb(),
        "rss_before_fit_mb": before,
        "n_obs": tables["fit"]["sample"]["n_obs"],
        "n_patients": tables["fit"]["sample"]["n_patients"],
        "n_therapists": tables["fit"]["sample"]["n_therapists"],
        "loglik": fit["loglik"],
        "optimizer": fit["optimizer"],
        "attempts": len(fit["attempts"]),
        "flags": ";".join(tables["fit"]["flags"]) or "none",
    }


def run_python(size: str, model: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", size, model], capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_r(size: str, model: str, workdir: Path) -> dict | None:
    if shutil.which("Rscript") is None:
        return None
    from model_data import load

    csv = workdir / f"{size}.csv"
    if not csv.exists():
        load(size).to_csv(csv, index=False)
    script = workdir / "fit.R"
    script.write_text(R_SCRIPT)
    proc = subprocess.run(
        ["Rscript", str(script), str(csv), LME4_FORMULA[model]], capture_output=True, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    )
    if proc.returncode != 0:
        return {"error": proc.stderr[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["20k", "200k"], choices=["20k", "200k", "1M"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--no-r", action="store_true", help="skip lme4")
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return

    import pandas as pd

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            for model in args.models:
                py = run_python(size, model)
                r = None if args.no_r else run_r(size, model, Path(tmp))
                row = {"size": size, "model": model, **{f"py_{k}": v for k, v in py.items()}}
                if r and "seconds" in r:
                    row.update(lme4_seconds=r["seconds"], lme4_cpu_seconds=r["cpu_seconds"],
                               lme4_max_heap_mb=r["max_heap_mb"], lme4_loglik=r["loglik"], lme4_messages=r["messages"],
                               ratio=py["seconds"] / r["seconds"] if r["seconds"] > 0 else float("nan"),
                               cpu_ratio=py["cpu_seconds"] / r["cpu_seconds"] if r["cpu_seconds"] > 0 else float("nan"),
                               loglik_diff=py["loglik"] - r["loglik"])
                elif r:
                    row["lme4_error"] = r["error"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    table = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT / "bench_models.csv", index=False)
    show = ["size", "model", "py_n_obs", "py_n_patients", "py_seconds", "py_cpu_seconds", "py_peak_rss_mb",
            "py_rss_before_fit_mb", "lme4_seconds", "lme4_cpu_seconds", "ratio", "cpu_ratio", "lme4_max_heap_mb",
            "loglik_diff", "py_flags"]
    print(f"\nmachine: {platform.platform()}, {os.cpu_count()} CPUs; Python engine: statsmodels via alliance.suite.fit_model "
          "(4 optimiser sequences); lme4: lmer default control")
    print(table[[c for c in show if c in table]].to_string(index=False, float_format=lambda x: f"{x:.3g}"))


if __name__ == "__main__":
    main()
