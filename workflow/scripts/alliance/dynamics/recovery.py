"""Recovery study: simulate the process with known truth, fit the RI-CLPM, summarise.

    cd workflow/scripts && ../../.venv/bin/python -m alliance.dynamics.recovery --replications 200

Each replication draws a data set from :func:`alliance.dynamics.process.simulate_process` (its
own generator, spawned from one seed, so the study is reproducible and any replication can be
rerun alone), converts it to wide form and fits :func:`alliance.dynamics.riclpm.fit_riclpm`.
Replications that do not converge are counted and left out of the summary.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from .process import DropoutParams, ProcessParams, simulate_process
from .riclpm import RICLPMWarning, fit_riclpm, riclpm_long_to_wide

__all__ = ["recovery_study", "summarise_replications"]

PATHS = ("alpha", "beta", "gamma", "delta")
LONG_RUN = ("x->x", "y->x", "x->y", "y->y")
#: the default dropout of the study (monotone MAR, about half the patients gone by session 7)
DEFAULT_DROPOUT = DropoutParams()


def _one_replication(params, n_patients, dropout, constrain_paths, seed_seq) -> tuple[list[dict], list[str]]:
    rng = np.random.default_rng(seed_seq)
    long, truth = simulate_process(params, n_patients, rng, dropout=dropout)
    wide = riclpm_long_to_wide(
        long, patient="patient", session="session", x="alliance_score", y="symptom_score", waves=params.n_sessions
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RICLPMWarning)  # flags are kept in the result
        fit = fit_riclpm(wide, params.n_sessions, constrain_paths=constrain_paths)
    rows = []
    for name, row in fit.parameters.iterrows():
        if name in truth["riclpm"]:
            rows.append(
                {
                    "parameter": name,
                    "truth": truth["riclpm"][name],
                    "estimate": row["estimate"],
                    "se": row["se"],
                    "ci_low": row["ci_low"],
                    "ci_high": row["ci_high"],
                }
            )
    for name, row in fit.long_run.iterrows():
        rows.append(
            {
                "parameter": f"long_run {name}",
                "truth": truth["long_run"][name],
                "estimate": row["estimate"],
                "se": row["se"],
                "ci_low": row["ci_low"],
                "ci_high": row["ci_high"],
            }
        )
    flags = list(fit.flags) + ([] if fit.converged else ["not_converged"])
    return rows, sorted(set(flags))


def summarise_replications(reps: pd.DataFrame) -> pd.DataFrame:
    """Per parameter: truth, mean estimate, bias, relative bias, empirical SD, mean SE, coverage, MC SEs."""
    ok = reps[reps["converged"]]
    covered = (ok["ci_low"] <= ok["truth"]) & (ok["truth"] <= ok["ci_high"])
    grouped = ok.assign(covered=covered).groupby("parameter", sort=False)
    out = grouped.agg(
        truth=("truth", "first"),
        mean_estimate=("estimate", "mean"),
        empirical_sd=("estimate", "std"),
        mean_se=("se", "mean"),
        coverage=("covered", "mean"),
        n=("estimate", "size"),
    )
    out["bias"] = out["mean_estimate"] - out["truth"]
    out["relative_bias"] = np.where(out["truth"] != 0, out["bias"] / out["truth"].abs(), np.nan)
    out["bias_mcse"] = out["empirical_sd"] / np.sqrt(out["n"])
    out["coverage_mcse"] = np.sqrt(out["coverage"] * (1 - out["coverage"]) / out["n"])
    out["se_ratio"] = out["mean_se"] / out["empirical_sd"]
    cols = [
        "truth",
        "mean_estimate",
        "bias",
        "relative_bias",
        "bias_mcse",
        "empirical_sd",
        "mean_se",
        "se_ratio",
        "coverage",
        "coverage_mcse",
        "n",
    ]
    return out[cols].reset_index()


def map_replications(replicate: Callable[[np.random.SeedSequence], Any], seeds: list, processes: int = 1) -> list:
    """``replicate(seed)`` for every seed, in the seeds' order, in this process or over ``processes`` workers.

    A replication depends only on its own seed, so the results, and the tables made from them,
    are the same for any number of processes; ``replicate`` must be picklable for workers (a
    module-level function or a ``functools.partial`` of one).
    """
    if processes > 1:
        with ProcessPoolExecutor(max_workers=processes) as pool:
            return list(pool.map(replicate, seeds))
    return [replicate(seed) for seed in seeds]


def recovery_study(
    params: ProcessParams | None = None,
    n_patients: int = 600,
    replications: int = 200,
    seed: int = 20251111,
    dropout: DropoutParams | None = DEFAULT_DROPOUT,
    constrain_paths: bool = True,
    return_replications: bool = False,
    processes: int = 1,
):
    """Run ``replications`` simulate-and-fit replications and summarise the recovery of every parameter.

    Parameters
    ----------
    params
        The process truth (default :class:`ProcessParams()`: 7 sessions, carry-overs 0.40,
        cross-lags -0.20 alliance -> symptoms and -0.10 symptoms -> alliance).
    n_patients, replications, seed
        Size, number and seed of the replications (``numpy.random.SeedSequence(seed).spawn``).
    dropout
        Monotone MAR dropout (default :class:`DropoutParams()`); ``None`` for complete data.
    constrain_paths
        Fit the equal-paths model (long-run effects included) or the free-paths model.
    return_replications
        Also return the per-replication table (estimate, SE, CI, flags per parameter).
    processes
        Worker processes the replications are spread over (:func:`map_replications`; the
        tables do not change).

    Returns
    -------
    DataFrame
        One row per parameter: ``parameter, truth, mean_estimate, bias, relative_bias,
        bias_mcse, empirical_sd, mean_se, se_ratio, coverage, coverage_mcse, n`` (coverage of
        the 95 % Wald CI; ``n`` converged replications). ``attrs["n_flagged"]`` counts
        replications with any flag, ``attrs["flags"]`` each flag.
    """
    params = params or ProcessParams()
    rows, flag_counts, n_flagged = [], {}, 0
    one = partial(_one_replication, params, n_patients, dropout, constrain_paths)
    fitted = map_replications(one, np.random.SeedSequence(seed).spawn(replications), processes)
    for rep, (rep_rows, flags) in enumerate(fitted, start=1):
        n_flagged += bool(flags)
        for flag in flags:
            flag_counts[flag] = flag_counts.get(flag, 0) + 1
        converged = "not_converged" not in flags
        rows += [{"replication": rep, **r, "converged": converged, "flags": ",".join(flags)} for r in rep_rows]
    reps = pd.DataFrame(rows)
    summary = summarise_replications(reps)
    summary.attrs.update(
        {
            "n_flagged": n_flagged,
            "flags": flag_counts,
            "replications": replications,
            "n_patients": n_patients,
            "waves": params.n_sessions,
            "seed": seed,
        }
    )
    return (summary, reps) if return_replications else summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--patients", type=int, default=600)
    parser.add_argument("--seed", type=int, default=20251111)
    parser.add_argument("--complete", action="store_true", help="no dropout")
    args = parser.parse_args(argv)
    summary = recovery_study(
        n_patients=args.patients,
        replications=args.replications,
        seed=args.seed,
        dropout=None if args.complete else DropoutParams(),
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        print(summary.to_string(index=False))
    print(summary.attrs)


if __name__ == "__main__":
    main()
