"""Model-stage benchmark: every engine against lme4 on the same data in the same run.

    .venv/bin/python bench/bench_engines.py                        # 20k, 200k, 1M rows; 3 / 3 / 2 repetitions
    .venv/bin/python bench/bench_engines.py --sizes 20k --reps 1   # quick look
    .venv/bin/python bench/bench_engines.py --statsmodels-sizes 20k 200k   # statsmodels is slow

Data: bench/model_data.py (the pipeline's simulator, model-ready columns; cached under
bench/out/data/).  Models (the suite's two structures that matter for speed):

* ``two_level``: symptoms ~ within + between + session_c + (1 + within | patient)
* ``three_level``: symptoms ~ within + patient-within-therapist + between-therapist + session_c
  + (1 | therapist) + (1 + within | therapist:patient)  [statsmodels: the || form, flag simplified]

Each measurement runs in a fresh subprocess (peak memory = its ru_maxrss; for lme4 also the R
process's).  Columns: ``engine s`` is the whole ``fit(spec, data, engine=...)`` call (design,
fit, Satterthwaite df, BLUPs, checks; for lme4 including R start-up and data transfer), ``engine
CPU s`` its CPU time (Python and R; the fairer ratio when other jobs share the machine), ``fit s``
the engine's own fitting call (``lme4::lmer`` timed inside R; ``mixedlm.lmer``), ``df s``
Satterthwaite (lmerTest / mixedlm).  Medians over repetitions.  The largest relative difference
of the fixed effects from lme4's is printed for every engine.  No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

MODELS = {
    "two_level": {
        "fixed": ("alliance_within_patient", "alliance_between_patient", "session_c"),
        "random": [("patient", ("alliance_within_patient",), None)],
    },
    "three_level": {
        "fixed": (
            "alliance_within_patient",
            "alliance_patient_within_therapist",
            "alliance_between_therapist",
            "session_c",
        ),
        "random": [("therapist", (), None), ("patient", ("alliance_within_patient",), "therapist")],
    },
}


def spec(model: str):
    from alliance.engines.spec import ModelSpec, RandomTerm

    m = MODELS[model]
    return ModelSpec(
        model, "symptoms", m["fixed"], tuple(RandomTerm(g, slopes=s, nested_in=n) for g, s, n in m["random"])
    )


def worker(engine: str, size: str, model: str) -> None:
    """One measurement (runs in its own process); prints a JSON line."""
    import warnings

    from model_data import load

    from alliance.engines.dispatch import fit

    data = load(size)
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    res = fit(spec(model), data, engine=engine)
    total = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum((b.ru_utime + b.ru_stime) - (a.ru_utime + a.ru_stime) for a, b in zip(c0, c1))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "engine": engine,
                "size": size,
                "model": model,
                "n": int(res.fit["n_obs"]),
                "total": total,
                "cpu": cpu,
                "fit": res.timings.get("fit", total),
                "df": res.timings.get("satterthwaite"),
                "rss_kb": own,
                "rss_children_kb": kids,
                "flags": res.flags,
                "fixed": dict(zip(res.fixed["term"], res.fixed["estimate"].astype(float))),
                "df_values": dict(zip(res.fixed["term"], res.fixed["df"].astype(float))) if "df" in res.fixed else None,
                "version": res.fit["engine_version"],
            }
        )
    )


def measure(engine: str, size: str, model: str, env: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", engine, size, model], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} {size} {model} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=3, metavar=("ENGINE", "SIZE", "MODEL"))
    ap.add_argument("--sizes", nargs="+", default=["20k", "200k", "1M"])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--engines", nargs="+", default=["lme4", "mixedlm", "statsmodels"])
    ap.add_argument("--reps", type=int, nargs="+", default=[3, 3, 2], help="repetitions per size (last value repeats)")
    ap.add_argument(
        "--statsmodels-sizes",
        nargs="+",
        default=["20k"],
        help="sizes at which the (slow: 4 optimiser attempts) statsmodels engine runs",
    )
    ap.add_argument("--statsmodels-reps", type=int, default=1, help="repetitions of the statsmodels engine")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS / Rust (rayon) threads per fit (default 1, as a Snakemake job with threads: 1)",
    )
    args = ap.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return
    from model_data import load

    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        env[var] = str(args.threads)
    print(
        f"# bench_engines: {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
        f"{args.threads} thread(s) per fit"
    )
    rows = []
    for i, size in enumerate(args.sizes):
        load(size)  # build the cache outside the timings
        reps = args.reps[min(i, len(args.reps) - 1)]
        for model in args.models:
            results = {}
            for engine in args.engines:
                if engine == "statsmodels" and size not in args.statsmodels_sizes:
                    continue
                n_reps = args.statsmodels_reps if engine == "statsmodels" else reps
                runs = [measure(engine, size, model, env) for _ in range(n_reps)]
                results[engine] = runs
            ref = results.get("lme4", [None])[0]
            for engine, runs in results.items():
                r0 = runs[0]
                diff = None
                if ref is not None:
                    diff = max(abs(r0["fixed"][k] - v) / max(abs(v), 1e-12) for k, v in ref["fixed"].items())
                rows.append(
                    {
                        "size": size,
                        "n": r0["n"],
                        "model": model,
                        "engine": engine,
                        "reps": len(runs),
                        "total": statistics.median(r["total"] for r in runs),
                        "cpu": statistics.median(r.get("cpu", float("nan")) for r in runs),
                        "fit": statistics.median(r["fit"] for r in runs),
                        "df": statistics.median(r["df"] for r in runs) if r0["df"] is not None else None,
                        "rss": max(r["rss_kb"] for r in runs) / 1e6,
                        "rss_r": max(r["rss_children_kb"] for r in runs) / 1e6 if engine == "lme4" else None,
                        "diff": diff,
                        "flags": ";".join(r0["flags"]) or "none",
                        "version": r0["version"],
                    }
                )
            print_table(rows)
    print_table(rows, final=True)


def print_table(rows: list[dict], final: bool = False) -> None:
    if not final:
        r = rows[-1]
        print(f"... {r['size']} {r['model']} done", flush=True)
        return
    print(
        "\n| rows | model | engine | engine s | engine CPU s | fit s | df s | peak GB (Python / R) | max rel diff fixed vs lme4 | flags |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        df = "-" if r["df"] is None else f"{r['df']:.2f}"
        mem = f"{r['rss']:.2f}" + (f" / {r['rss_r']:.2f}" if r["rss_r"] is not None else "")
        diff = "-" if r["diff"] is None else f"{r['diff']:.1e}"
        print(
            f"| {r['n']:,} | {r['model']} | {r['engine']} | {r['total']:.2f} | {r.get('cpu', float('nan')):.2f} | {r['fit']:.2f} | {df} | {mem} | {diff} | {r['flags']} |"
        )
    versions = sorted({f"{r['engine']} {r['version']}" for r in rows})
    print("\n" + "; ".join(versions))


if __name__ == "__main__":
    main()
