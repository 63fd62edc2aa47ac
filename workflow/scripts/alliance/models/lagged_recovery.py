"""Recovery study of the suite's lagged specifications on data with a known lagged truth.

    cd workflow/scripts && ../../.venv/bin/python -m alliance.models.lagged_recovery --replications 200

Each replication draws a trial from :func:`alliance.dynamics.process.simulate_process` (its own
generator, spawned from one seed, so any replication can be rerun alone): 600 patients x 10
sessions, 60 therapists with 10 patients each, within-person carry-over 0.40 in both variables,
cross-lags -0.20 (alliance -> next symptoms) and -0.10 (symptoms -> next alliance), in
within-person standard units as in Falkenström, Solomonov & Rubel (2022). The stable person
intercepts (SD 1, correlation -0.30) are split into a patient part and a therapist part
(:data:`THERAPIST_SHARE` of their variance), so that the three-level model has a therapist level.

The trial is turned into an analysis table as the intake stage makes it (:func:`analysis_table`:
the within/between parts, the detrended alliance, the next-session values, all from
:mod:`alliance.intake.derive`), and every lagged model of the config is fitted through the
suite's own path: the config entry -> :func:`alliance.models.data.model_frame` (person means from
the model's rows, detrended parts) -> :func:`alliance.models.specs.spec_from_config` ->
:func:`alliance.engines.dispatch.fit` with the default engine. The RI-CLPM of the config is fitted
to the same tables (its first ``waves`` sessions, :func:`alliance.models.riclpm_suite.riclpm_wide`).

What each coefficient estimates (:func:`estimands`): in a model of ``symptoms_next`` the
within-patient alliance term is the cross-lag alliance -> symptoms and the lagged symptom term
(raw or person-centred) the carry-over of symptoms; in a model of ``alliance_next`` the same with
the roles swapped. Summaries per coefficient (:func:`alliance.dynamics.recovery.summarise_replications`):
mean estimate, bias with its Monte Carlo SE, empirical SD, mean model SE and their ratio, and the
coverage of the 95 % CI with its Monte Carlo SE. The results are in docs/lagged_recovery.md.
"""

from __future__ import annotations

import argparse
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from alliance.dynamics.process import ProcessParams, simulate_process
from alliance.dynamics.recovery import map_replications, summarise_replications
from alliance.dynamics.riclpm import fit_riclpm
from alliance.engines.dispatch import fit
from alliance.intake.derive import decompose_within_between, next_session_values, within_patient_detrended
from alliance.models.config import is_riclpm
from alliance.models.data import model_frame
from alliance.models.riclpm_suite import riclpm_wide
from alliance.models.specs import spec_from_config

__all__ = [
    "STUDY_PARAMS",
    "THERAPIST_SHARE",
    "analysis_table",
    "estimands",
    "lagged_models",
    "simulate_trial",
    "replicate",
    "lagged_recovery_study",
    "markdown_table",
]

#: the known truth of the study (within-person SD units; x = alliance, y = symptoms)
STUDY_PARAMS = ProcessParams(n_sessions=10)
#: share of the stable intercepts' variance that lies between therapists
THERAPIST_SHARE = 0.2
N_PATIENTS, N_THERAPISTS = 600, 60
DEFAULT_SEED = 20260111
ROOT = Path(__file__).resolve().parents[4]
#: (outcome of the model, kind of term) -> the RI-CLPM path it estimates
TRUTH_OF = {
    ("symptoms_next", "cross"): "gamma",
    ("symptoms_next", "carry"): "delta",
    ("alliance_next", "cross"): "beta",
    ("alliance_next", "carry"): "alpha",
}


def simulate_trial(params: ProcessParams, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One trial of :data:`N_PATIENTS` patients, :data:`N_THERAPISTS` therapists: long data and the truth.

    The intercepts (kappa_x, kappa_y) ~ N(0, Phi) of ``params`` are drawn as a patient part with
    (1 - :data:`THERAPIST_SHARE`) Phi and a therapist part with THERAPIST_SHARE Phi; the process is
    simulated around them. Draw order: therapist parts, patient parts, then the process's own.
    """
    factor = params.intercept_factor
    therapist_of = np.repeat(np.arange(N_THERAPISTS), N_PATIENTS // N_THERAPISTS)
    therapist_part = rng.standard_normal((N_THERAPISTS, 2)) @ factor.T * np.sqrt(THERAPIST_SHARE)
    patient_part = rng.standard_normal((N_PATIENTS, 2)) @ factor.T * np.sqrt(1.0 - THERAPIST_SHARE)
    intercepts = patient_part + therapist_part[therapist_of]
    ids = np.array([f"P{i:04d}" for i in range(1, N_PATIENTS + 1)])
    long, truth = simulate_process(params, None, rng, intercepts=intercepts, patient_ids=ids)
    therapists = pd.Series([f"T{t + 1:03d}" for t in therapist_of], index=ids)
    long.insert(1, "therapist", long["patient"].map(therapists))
    return long, truth


def analysis_table(long: pd.DataFrame) -> pd.DataFrame:
    """The analysis table the intake stage would make of ``long`` (patient, therapist, session, scores).

    The same derivations as :mod:`alliance.intake.scoring`: ``session_c``, the within/between parts
    of alliance and symptoms, the detrended alliance and the next-session values.
    """
    data = long.rename(columns={"alliance_score": "alliance", "symptom_score": "symptoms"})
    data = data.sort_values(["patient", "session"], kind="stable").reset_index(drop=True)
    data["session_c"] = data["session"] - 1
    return pd.concat(
        [
            data,
            decompose_within_between(data, "alliance"),
            within_patient_detrended(data, "alliance"),
            decompose_within_between(data, "symptoms"),
            next_session_values(data, ["symptoms", "alliance"]),
        ],
        axis=1,
    )


def lagged_models(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The lagged specifications of a config, in config order: enabled models of a ``*_next`` outcome, then RI-CLPMs."""
    enabled = [m for m in config["models"] if m.get("enabled", True)]
    mixed = [m for m in enabled if not is_riclpm(m) and str(m["outcome"]).endswith("_next")]
    return mixed + [m for m in enabled if is_riclpm(m)]


def estimands(model: dict[str, Any]) -> dict[str, str]:
    """Fixed term -> the path it estimates (``alpha``, ``beta``, ``gamma``, ``delta``) of a lagged mixed model.

    The cross-lag is the within-patient predictor (``roles``: ``within_patient``); the carry-over is
    the lagged outcome, the outcome's own value at t entered raw or as its within-patient part.

    >>> estimands({"outcome": "symptoms_next", "fixed": ["alliance_within_patient", "symptoms", "session_c"],
    ...            "roles": {"alliance_within_patient": "within_patient"}})
    {'alliance_within_patient': 'gamma', 'symptoms': 'delta'}
    """
    outcome = model["outcome"]
    value = outcome.removesuffix("_next")
    out = {t: TRUTH_OF[outcome, "cross"] for t, role in (model.get("roles") or {}).items() if role == "within_patient"}
    for term in model.get("fixed", []):
        if term in (value, f"{value}_within_patient", f"{value}_within_patient_detrended"):
            out[term] = TRUTH_OF[outcome, "carry"]
    return out


def _mixed_rows(model: dict[str, Any], table: pd.DataFrame, truth: dict[str, float]) -> tuple[list[dict], list[str]]:
    """Fit one lagged mixed model through the suite's path; one row per estimated path."""
    frame, _ = model_frame(model, table)
    result = fit(spec_from_config(model), frame)
    fixed = result.fixed.set_index("term")
    rows = [
        {
            "model": model["name"],
            "term": term,
            "parameter": path,
            "truth": truth[path],
            **{k: float(fixed.loc[term, k]) for k in ("estimate", "se", "ci_low", "ci_high")},
        }
        for term, path in estimands(model).items()
    ]
    return rows, list(result.flags)


def _riclpm_rows(model: dict[str, Any], table: pd.DataFrame, truth: dict[str, float]) -> tuple[list[dict], list[str]]:
    """Fit the config's RI-CLPM (its reported path setting) to the first ``waves`` sessions; one row per path."""
    wide, _ = riclpm_wide(model, table)
    constrained = model.get("paths", "constrained") == "constrained"
    result = fit_riclpm(wide, int(model["waves"]), constrain_paths=constrained, cluster=model.get("cluster"))
    names = ("alpha", "beta", "gamma", "delta") if constrained else ()
    rows = [
        {
            "model": model["name"],
            "term": name,
            "parameter": name,
            "truth": truth[name],
            **{k: float(result.parameters.loc[name, k]) for k in ("estimate", "se", "ci_low", "ci_high")},
        }
        for name in names
    ]
    return rows, list(result.flags)


def replicate(
    models: list[dict[str, Any]], seed: np.random.SeedSequence, params: ProcessParams = STUDY_PARAMS
) -> pd.DataFrame:
    """One replication: simulate a trial, fit every model; one row per model and estimated path, with flags."""
    long, truth = simulate_trial(params, np.random.default_rng(seed))
    table = analysis_table(long)
    paths = truth["riclpm"]
    rows = []
    for model in models:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the flags are kept in the rows
            found, flags = (_riclpm_rows if is_riclpm(model) else _mixed_rows)(model, table, paths)
        for row in found:
            rows.append({**row, "flags": ",".join(flags), "converged": "not_converged" not in flags})
    return pd.DataFrame(rows)


def _replicate_with(models: list[dict[str, Any]], params: ProcessParams, seed: np.random.SeedSequence):
    """:func:`replicate` with the seed last, for :func:`map_replications`."""
    return replicate(models, seed, params)


def lagged_recovery_study(
    config: dict[str, Any],
    replications: int = 200,
    seed: int = DEFAULT_SEED,
    params: ProcessParams = STUDY_PARAMS,
    processes: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the study on every lagged model of ``config``: (summary, replications).

    ``summary``: one row per model and term -- ``model, term, parameter, truth, mean_estimate,
    bias, relative_bias, bias_mcse, empirical_sd, mean_se, se_ratio, coverage, coverage_mcse, n``
    (``n``: replications whose fit converged) and ``flagged`` (replications with any flag).
    ``processes`` > 1 spreads the replications over that many worker processes; each replication
    has its own seed (``SeedSequence(seed).spawn``) and the results are kept in replication order,
    so the tables are the same for any number of processes.
    """
    models = lagged_models(config)
    one = partial(_replicate_with, models, params)
    fitted = map_replications(one, np.random.SeedSequence(seed).spawn(replications), processes)
    reps = [rep.assign(replication=number) for number, rep in enumerate(fitted, start=1)]
    table = pd.concat(reps, ignore_index=True)
    keyed = table.assign(parameter=table["model"] + "|" + table["term"] + "|" + table["parameter"])
    summary = summarise_replications(keyed)
    flagged = keyed.assign(any_flag=keyed["flags"] != "").groupby("parameter")["any_flag"].sum()
    summary["flagged"] = summary["parameter"].map(flagged).astype(int)
    parts = summary["parameter"].str.split("|", expand=True)
    summary = summary.drop(columns="parameter")
    summary.insert(0, "model", parts[0])
    summary.insert(1, "term", parts[1])
    summary.insert(2, "parameter", parts[2])
    summary.attrs.update(
        {
            "replications": replications,
            "seed": seed,
            "n_patients": N_PATIENTS,
            "n_therapists": N_THERAPISTS,
            "sessions": params.n_sessions,
        }
    )
    return summary, table


PARAMETER_TEXT = {
    "gamma": "cross-lag alliance -> symptoms",
    "beta": "cross-lag symptoms -> alliance",
    "delta": "carry-over of symptoms",
    "alpha": "carry-over of alliance",
}


def markdown_table(summary: pd.DataFrame) -> str:
    """The summary as the Markdown table of docs/lagged_recovery.md (coverage in %, MC SEs in brackets)."""
    lines = [
        "| model | term | estimates | truth | mean estimate | bias (MC SE) | relative bias | empirical SE "
        "| mean model SE | SE ratio | 95 % CI coverage (MC SE) | flagged |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in summary.itertuples(index=False):
        lines.append(
            f"| `{r.model}` | `{r.term}` | {PARAMETER_TEXT[r.parameter]} | {r.truth:.2f} | {r.mean_estimate:.3f} "
            f"| {r.bias:+.3f} ({r.bias_mcse:.3f}) | {100 * r.relative_bias:+.0f} % | {r.empirical_sd:.3f} "
            f"| {r.mean_se:.3f} | {r.se_ratio:.2f} | {100 * r.coverage:.1f} % ({100 * r.coverage_mcse:.1f}) "
            f"| {r.flagged} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line: run the study on a config's lagged models, print the Markdown table, optionally save CSVs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"), help="config with the models")
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--processes", type=int, default=1, help="worker processes (the tables do not change)")
    parser.add_argument("--summary-csv", help="write the summary table here")
    parser.add_argument("--replications-csv", help="write every replication's estimates here")
    args = parser.parse_args(argv)
    config = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    start = time.perf_counter()
    summary, reps = lagged_recovery_study(config, args.replications, args.seed, processes=args.processes)
    if args.summary_csv:
        summary.to_csv(args.summary_csv, index=False, float_format="%.6g", lineterminator="\n")
    if args.replications_csv:
        reps.to_csv(args.replications_csv, index=False, float_format="%.6g", lineterminator="\n")
    print(markdown_table(summary))
    print(f"\n{summary.attrs}; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
