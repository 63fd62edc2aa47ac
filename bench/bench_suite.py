"""Model-stage benchmark: every model of the suite (and every stratum), mixedlm against lme4 on the
same data in the same run (issue #6).

    .venv/bin/python bench/bench_suite.py                                  # 20k, 200k, 1M rows
    .venv/bin/python bench/bench_suite.py --sizes 20k                      # a few minutes
    .venv/bin/python bench/bench_suite.py --sizes 20k --cases three_level moderation/cbt-anxiety --reps 3

Data (bench/model_data.py ``load_suite``, cached under bench/out/data/suite_<size>/): the pipeline's
simulator (TrialDesign with 17 / 171 / 857 therapists x 100 patients, add_mess=False, seed 20261125)
and the pipeline's cleaning (``alliance.intake.clean.clean_dataset`` with the config's dataset, analysis
and cleaning sections): the analysis and patients tables the fit jobs read.

Cases: every enabled model of the config's ``models`` (``alliance.models.suite.fit_model``) and every
stratum of the stratified models (``fit_stratum``; case ``<model>/<stratum>``), with
``model_context(config)``, as the pipeline's rules fit_model and fit_stratum call them.

Each (size, case, engine, repetition) runs in a fresh subprocess with 1 BLAS / Rust thread
(``--threads``).  It reads the cached tables as the fit jobs do (``load_model_tables``: the model's
columns only) and times only the
``fit_model``/``fit_stratum`` call (engine import and mixedlm's first-call costs included):
wall, CPU (this process plus its children, i.e. R), peak RSS (ru_maxrss of this process and of its
children).  For lme4 the call includes R start-up (~2 s) and the data transfer; "lme4 in-R s" is
lme4's own ``lmer`` plus lmerTest's Satterthwaite df, timed inside R.  The ratios are mixedlm's
whole call over lme4's whole call, and over lme4's in-R time (the comparison most favourable to lme4).

Agreement: fixed effects as in tests/test_suite_lme4.py, |mixedlm - lme4| / max(|lme4|, lme4 SE);
variances |mixedlm - lme4| / max(|lme4|, 1e-4 x lme4 residual variance); correlations absolute.
Output: Markdown tables on stdout, every measurement in bench/out/bench_suite.csv.  Times are
medians over ``--reps``.  No timing is asserted anywhere; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import math
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

OUT = ROOT / "bench" / "out"
CONFIG = ROOT / "config" / "config.yaml"
#: a variance below this share of the residual variance is "on the boundary" (tests/test_suite_lme4.py)
VC_FLOOR_SHARE = 1e-4


def suite_cases(config: dict) -> dict[str, tuple[dict, str | None]]:
    """case name -> (model config, stratum or None): every enabled model, then its strata."""
    from alliance.models.config import model_context, strata

    labels = model_context(config)["labels"]
    # the mixed models (an RI-CLPM, type: riclpm, has its own benchmark: bench/bench_riclpm.py)
    models = [m for m in config["models"] if m.get("enabled", True) and m.get("type") != "riclpm"]
    cases: dict[str, tuple[dict, str | None]] = {m["name"]: (m, None) for m in models}
    for m in models:
        for stratum in strata(m, labels):
            cases[f"{m['name']}/{stratum}"] = (m, stratum)
    return cases


# --------------------------------------------------------------------------------------------
# worker: one measurement in a fresh process
# --------------------------------------------------------------------------------------------


def _engine_timings(engine: str, sink: list) -> None:
    """Record the timings, unrounded log-likelihood and convergence message of every engine call
    (the engine module's fit_engine; the suite's tables round to 10 digits)."""
    import importlib

    from alliance.engines.dispatch import ENGINE_MODULES

    module = importlib.import_module(ENGINE_MODULES[engine])
    inner = module.fit_engine

    def wrapped(*args, **kwargs):
        res = inner(*args, **kwargs)
        sink.append(
            {
                **(getattr(res, "timings", {}) or {}),
                "loglik": res.fit.get("loglik"),
                "message": res.fit.get("engine_message", ""),
            }
        )
        return res

    module.fit_engine = wrapped


def worker(size: str, case: str, engine: str, configfile: str) -> dict:
    import warnings

    from model_data import demo_config, load_suite

    from alliance.models.config import model_context
    from alliance.models.suite import fit_model, fit_stratum

    config = demo_config(configfile)
    model, stratum = suite_cases(config)[case]
    context = model_context(config)
    analysis, patients = load_suite(size, model)
    timings: list[dict] = []
    _engine_timings(engine, timings)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    warnings.simplefilter("ignore")
    c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    if stratum is None:
        tables = fit_model(model, analysis, patients, context, engine=engine)
    else:
        tables = fit_stratum(model, stratum, analysis, patients, context, engine=engine)
    seconds = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum((b.ru_utime + b.ru_stime) - (a.ru_utime + a.ru_stime) for a, b in zip(c0, c1))
    fit = tables["fit"]
    t = timings[-1] if timings else {}
    fixed = tables["fixed"]
    variance = tables["variance"]
    return {
        "size": size,
        "case": case,
        "engine": engine,
        "n_obs": fit["sample"].get("n_obs"),
        "n_patients": fit["sample"].get("n_patients"),
        "n_therapists": fit["sample"].get("n_therapists"),
        "seconds": seconds,
        "cpu_seconds": cpu,
        # engine phases (lme4: fit and df timed inside R; r_total = the Rscript call incl. start-up)
        "engine_fit_s": t.get("fit"),
        "engine_df_s": t.get("satterthwaite"),
        "r_total_s": t.get("r_total"),
        "rss_before_mb": rss_before / 1024,
        "rss_mb": c1[0].ru_maxrss / 1024,
        "rss_children_mb": c1[1].ru_maxrss / 1024,
        "flags": list(fit["flags"]),
        "df_method": fit["fit"].get("df_method", ""),
        "engine_version": fit["fit"].get("engine_version", ""),
        "loglik": t.get("loglik", fit["fit"].get("loglik")),
        "engine_message": " ".join(str(t.get("message") or "").split()),
        "not_fitted": fit["sample"].get("not_fitted", ""),
        "fixed": {r["term"]: [r["estimate"], r["se"], r.get("df")] for r in fixed.to_dict(orient="records")},
        "variance": [
            [r["group"], r["term"], r["variance"], r["correlation"]] for r in variance.to_dict(orient="records")
        ],
    }


def measure(size: str, case: str, engine: str, configfile: str, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--worker", size, case, engine, "--configfile", configfile]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        print(f"  ! {size} {case} {engine} failed: {tail}", flush=True)
        return {"size": size, "case": case, "engine": engine, "error": tail[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# comparison and tables
# --------------------------------------------------------------------------------------------


def _num(x) -> float:
    return float("nan") if x is None else float(x)


def compare(m: dict, r: dict) -> dict:
    """Largest differences of mixedlm's estimates from lme4's."""
    out = {
        "fixed_rel_diff": float("nan"),
        "fixed_worst_term": "",
        "vc_rel_diff": float("nan"),
        "vc_worst": "",
        "corr_abs_diff": float("nan"),
        "se_rel_diff": float("nan"),
        "df_rel_diff": float("nan"),
        "loglik_diff": _num(m.get("loglik")) - _num(r.get("loglik")),
        "same_rows": m.get("n_obs") == r.get("n_obs"),
    }
    if sorted(m["fixed"]) != sorted(r["fixed"]):
        out["fixed_worst_term"] = "terms differ"
        return out
    worst, fixed_d, se_d, df_d = "", [], [], []
    for term, (est_r, se_r, df_r) in r["fixed"].items():
        est_m, se_m, df_m = m["fixed"][term]
        d = abs(_num(est_m) - _num(est_r)) / max(abs(_num(est_r)), _num(se_r))
        if not fixed_d or d > max(fixed_d):
            worst = term
        fixed_d.append(d)
        se_d.append(abs(_num(se_m) - _num(se_r)) / abs(_num(se_r)))
        if df_r is not None and df_m is not None:
            df_d.append(abs(df_m - df_r) / abs(df_r))
    out.update(
        fixed_rel_diff=max(fixed_d, default=float("nan")),
        fixed_worst_term=worst,
        se_rel_diff=max(se_d, default=float("nan")),
        df_rel_diff=max(df_d, default=float("nan")),
    )
    vm = {(g, t): (v, c) for g, t, v, c in m["variance"]}
    vr = {(g, t): (v, c) for g, t, v, c in r["variance"]}
    if set(vm) != set(vr):
        out["vc_worst"] = "components differ"
        return out
    sigma2 = next((v for (g, _), (v, _c) in vr.items() if g == "Residual"), float("nan"))
    vc_d, corr_d, vc_worst = [], [], ""
    for key, (v_r, c_r) in vr.items():
        v_m, c_m = vm[key]
        if c_r is not None and not (isinstance(c_r, float) and math.isnan(c_r)):
            corr_d.append(abs(_num(c_m) - _num(c_r)))
            continue
        d = abs(_num(v_m) - _num(v_r)) / max(abs(_num(v_r)), VC_FLOOR_SHARE * sigma2)
        if not vc_d or d > max(vc_d):
            vc_worst = f"{key[0]} {key[1]}"
        vc_d.append(d)
    out.update(
        vc_rel_diff=max(vc_d, default=float("nan")), vc_worst=vc_worst, corr_abs_diff=max(corr_d, default=float("nan"))
    )
    return out


def summarise(size: str, case: str, runs: dict[str, list[dict]]) -> dict:
    row: dict = {"size": size, "case": case}
    for engine, rs in runs.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            row[f"{engine}_error"] = rs[0]["error"]
            continue
        r0 = ok[0]
        row.update(
            {
                "n_obs": r0["n_obs"],
                "n_patients": r0["n_patients"],
                "n_therapists": r0["n_therapists"],
                f"{engine}_reps": len(ok),
                f"{engine}_s": statistics.median(r["seconds"] for r in ok),
                f"{engine}_cpu_s": statistics.median(r["cpu_seconds"] for r in ok),
                f"{engine}_fit_s": statistics.median(_num(r["engine_fit_s"]) for r in ok),
                f"{engine}_df_s": statistics.median(_num(r["engine_df_s"]) for r in ok),
                f"{engine}_rss_mb": max(r["rss_mb"] for r in ok),
                f"{engine}_rss_before_mb": max(r["rss_before_mb"] for r in ok),
                f"{engine}_rss_children_mb": max(r["rss_children_mb"] for r in ok),
                f"{engine}_flags": ";".join(r0["flags"]) or "none",
                f"{engine}_df_method": r0["df_method"],
                f"{engine}_version": r0["engine_version"],
                f"{engine}_loglik": r0["loglik"],
                f"{engine}_message": r0.get("engine_message", ""),
            }
        )
        if engine == "lme4":
            row["lme4_in_r_s"] = statistics.median(_num(r["engine_fit_s"]) + _num(r["engine_df_s"]) for r in ok)
            row["lme4_r_total_s"] = statistics.median(_num(r["r_total_s"]) for r in ok)
        if r0.get("not_fitted"):
            row[f"{engine}_not_fitted"] = r0["not_fitted"]
    m, r = (next((x for x in runs.get(e, []) if "error" not in x), None) for e in ("mixedlm", "lme4"))
    if m and r:
        row.update(compare(m, r))
    return row


def _f(x, fmt: str = ".2f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _ratio(a, b) -> float:
    return a / b if a is not None and b and not math.isnan(a) and not math.isnan(b) else float("nan")


def print_tables(rows: list[dict], load: list[float]) -> None:
    print(
        "\n| rows | case | mixedlm s | lme4 s | lme4 in-R s | ratio (lme4 call) | ratio (lme4 in-R) "
        "| fixed rel. diff | VC rel. diff | corr. diff | flags mixedlm | flags lme4 |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    totals = []
    for size in sizes:
        part = [r for r in rows if r["size"] == size]
        for r in part:
            m, l_, lr = r.get("mixedlm_s"), r.get("lme4_s"), r.get("lme4_in_r_s")
            flags_m = r.get("mixedlm_flags", "error" if "mixedlm_error" in r else "–")
            flags_l = r.get("lme4_flags", "error" if "lme4_error" in r else "–")
            n_obs = f"{r['n_obs']:,}" if r.get("n_obs") is not None else "–"
            print(
                f"| {n_obs} | {r['case']} | {_f(m)} | {_f(l_)} | {_f(lr)} | {_f(_ratio(m, l_))} "
                f"| {_f(_ratio(m, lr))} | {_f(r.get('fixed_rel_diff'), '.1e')} | {_f(r.get('vc_rel_diff'), '.1e')} "
                f"| {_f(r.get('corr_abs_diff'), '.1e')} | {flags_m} | {flags_l} |"
            )
        both = [r for r in part if r.get("mixedlm_s") is not None and r.get("lme4_s") is not None]
        sm = sum(r["mixedlm_s"] for r in both)
        sl = sum(r["lme4_s"] for r in both)
        slr = sum(r["lme4_in_r_s"] for r in both)
        n_rows = max((r.get("n_obs") or 0) for r in part)
        totals.append((size, n_rows, len(part), len(both), sm, sl, slr))
        print(
            f"| **{size}** | **total, {len(both)} of {len(part)} cases** | **{sm:.2f}** | **{sl:.2f}** | **{slr:.2f}** "
            f"| **{_f(_ratio(sm, sl))}** | **{_f(_ratio(sm, slr))}** "
            f"| {_f(max((r.get('fixed_rel_diff', float('nan')) for r in both), default=float('nan'), key=_nan_low), '.1e')} "
            f"| {_f(max((r.get('vc_rel_diff', float('nan')) for r in both), default=float('nan'), key=_nan_low), '.1e')} "
            f"| {_f(max((r.get('corr_abs_diff', float('nan')) for r in both), default=float('nan'), key=_nan_low), '.1e')} | | |"
        )
    print(
        "\nPeak memory per size (max over cases; ru_maxrss of the fit process, tables read with load_model_tables, "
        "and of R); CPU seconds include R's:\n"
    )
    print(
        "| size | largest model rows | mixedlm: Python GB | lme4: Python GB | lme4: R GB | CPU s mixedlm / lme4 (sum) "
        "| mixedlm's own fit + df s (sum) / lme4 in-R s (sum) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for size, n_rows, *_ in totals:
        part = [r for r in rows if r["size"] == size]

        def peak(key: str) -> str:
            vals = [r[key] for r in part if r.get(key) is not None]
            return _f(max(vals) / 1024, ".2f") if vals else "–"

        cm = sum(r.get("mixedlm_cpu_s", 0) for r in part if r.get("lme4_s") is not None)
        cl = sum(r.get("lme4_cpu_s", 0) for r in part if r.get("mixedlm_s") is not None)
        both = [r for r in part if r.get("mixedlm_s") is not None and r.get("lme4_s") is not None]
        own = sum(_num(r.get("mixedlm_fit_s")) + _num(r.get("mixedlm_df_s")) for r in both)
        in_r = sum(r["lme4_in_r_s"] for r in both)
        print(
            f"| {size} | {n_rows:,} | {peak('mixedlm_rss_mb')} | {peak('lme4_rss_mb')} | {peak('lme4_rss_children_mb')} "
            f"| {cm:.1f} / {cl:.1f} | {own:.2f} / {in_r:.2f} = {_f(_ratio(own, in_r))} |"
        )
    versions = sorted({f"{e}: {r[f'{e}_version']}" for r in rows for e in ("mixedlm", "lme4") if r.get(f"{e}_version")})
    methods = sorted({r[f"{e}_df_method"] for r in rows for e in ("mixedlm", "lme4") if r.get(f"{e}_df_method")})
    print(
        f"\n{'; '.join(versions)}. df: {'; '.join(methods)}. Load average {load[0]:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end."
    )
    disagree = [r for r in rows if (r.get("fixed_rel_diff") or 0) > 1e-4]
    for r in disagree:
        print(
            f"NOTE {r['size']} {r['case']}: fixed effects differ by {r['fixed_rel_diff']:.1e} (term {r['fixed_worst_term']}); "
            f"flags mixedlm {r.get('mixedlm_flags')}, lme4 {r.get('lme4_flags')}; loglik mixedlm - lme4 = {r.get('loglik_diff', float('nan')):.2e}; "
            f"lme4: {r.get('lme4_message') or '-'}"
        )
    for r in rows:
        if not r.get("same_rows", True):
            print(f"NOTE {r['size']} {r['case']}: the engines used different rows")
        for e in ("mixedlm", "lme4"):
            if r.get(f"{e}_error"):
                print(f"NOTE {r['size']} {r['case']}: {e} failed: {r[f'{e}_error']}")


def _nan_low(x: float) -> float:
    return -math.inf if x is None or math.isnan(x) else x


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=3, metavar=("SIZE", "CASE", "ENGINE"), help=argparse.SUPPRESS)
    ap.add_argument("--sizes", nargs="+", default=["20k", "200k", "1M"], choices=["20k", "200k", "1M"])
    ap.add_argument("--cases", nargs="+", help="subset: model names or <model>/<stratum> (default: every case)")
    ap.add_argument("--engines", nargs="+", default=["mixedlm", "lme4"], choices=["mixedlm", "lme4", "statsmodels"])
    ap.add_argument("--reps", type=int, default=1, help="repetitions per (size, case, engine); times are medians")
    ap.add_argument(
        "--threads", type=int, default=1, help="BLAS / Rust (rayon) threads per fit (a Snakemake job has threads: 1)"
    )
    ap.add_argument("--configfile", default=str(CONFIG), help="pipeline config (models, dataset, analysis, cleaning)")
    ap.add_argument("--refresh-data", action="store_true", help="re-simulate and re-clean the cached tables")
    ap.add_argument("--csv", default=str(OUT / "bench_suite.csv"))
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.configfile), default=float))
        return

    import pandas as pd
    from model_data import SEED, demo_config, suite_meta

    cases = suite_cases(demo_config(args.configfile))
    chosen = args.cases or list(cases)
    unknown = [c for c in chosen if c not in cases]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; cases: {', '.join(cases)}")
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        env[var] = str(args.threads)
    load = os.getloadavg()
    start = time.perf_counter()
    print(
        f"# bench_suite: {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, load average {load[0]:.1f}, "
        f"{args.threads} thread(s) per fit, {len(chosen)} cases x {args.engines} x {args.reps} rep(s)",
        flush=True,
    )
    rows: list[dict] = []
    for size in args.sizes:
        meta = suite_meta(
            size, SEED, refresh=args.refresh_data
        )  # outside the timings; a subprocess would not be smaller
        print(
            f"# {size}: {meta['analysis_rows']:,} analysis rows, {meta['patients_rows']:,} patients, seed {meta['seed']}",
            flush=True,
        )
        for case in chosen:
            runs: dict[str, list[dict]] = {e: [] for e in args.engines}
            for _ in range(args.reps):
                for engine in args.engines:  # interleaved, so that load changes hit both engines
                    runs[engine].append(measure(size, case, engine, args.configfile, env))
            row = summarise(size, case, runs)
            rows.append(row)
            print(
                f"  {size} {case}: "
                + ", ".join(f"{e} {_f(row.get(f'{e}_s'))} s" for e in args.engines)
                + (f", fixed diff {_f(row.get('fixed_rel_diff'), '.1e')}" if "fixed_rel_diff" in row else ""),
                flush=True,
            )
        OUT.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(args.csv, index=False)
    print_tables(rows, list(load))
    print(f"\nwhole benchmark: {time.perf_counter() - start:.0f} s; every measurement in {args.csv}")


if __name__ == "__main__":
    main()
