"""The report's section "Which comes first": both directions of the RI-CLPM with long-run effects,
fit indices, sample, clustering and every flag; the lagged multilevel models beside it with their
known-bias notes; the estimates beside a known truth; and every quoted number tied to its table.

The tables are made by the pipeline's own functions on a small simulated bivariate process with
known lagged effects (``alliance.dynamics.process``): the RI-CLPM by
``alliance.models.riclpm_suite.fit_riclpm_model``, the lagged mixed models by
``alliance.models.suite.fit_model``, written to disk as the workflow writes them and read back.
"""

from __future__ import annotations

import copy
import json
import re
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from alliance.dynamics.process import DropoutParams, ProcessParams, simulate_process
from alliance.dynamics.riclpm import RICLPMWarning
from alliance.models.config import model_context
from alliance.models.lagged_recovery import analysis_table
from alliance.models.riclpm_suite import RICLPM_TABLES, fit_riclpm_model
from alliance.models.suite import fit_model
from alliance.outputs import write_csv, write_json
from alliance.report import html as H
from alliance.report import lagged as L
from alliance.report import lagged_figure as LF
from alliance.report import truth as truth_module
from alliance.report import wording as W
from alliance.report.figures import save
from testkit import demo_config
from testkit.reports import check_numbers, parse, read_riclpm_tables

RICLPM = {
    "name": "riclpm_first5",
    "type": "riclpm",
    "label": "RI-CLPM of sessions 1-5",
    "variables": {"alliance": "alliance", "symptoms": "symptoms"},
    "waves": 5,
    "cluster": "therapist",
}
RAW_NOTE = "Raw lagged outcome beside a random intercept: the carry-over absorbs stable differences (Nickell bias)."
LAGGED = [
    {
        "name": "lagged_raw",
        "label": "Alliance at t, symptoms at t+1 (raw lagged outcome)",
        "outcome": "symptoms_next",
        "fixed": ["alliance_within_patient", "alliance_between_patient", "symptoms", "session_c"],
        "random": [{"group": "patient"}],
        "roles": {"alliance_within_patient": "within_patient", "alliance_between_patient": "between_patient"},
        "known_bias": RAW_NOTE,
    },
    {
        "name": "lagged_reverse",
        "label": "Symptoms at t, alliance at t+1",
        "outcome": "alliance_next",
        "fixed": ["symptoms_within_patient", "symptoms_between_patient", "alliance", "session_c"],
        "random": [{"group": "patient"}],
        "roles": {"symptoms_within_patient": "within_patient", "symptoms_between_patient": "between_patient"},
    },
]
SECTION = "10. Which comes first: alliance and symptom change over sessions"
TARGETS = "no single parameter: the values are the RI-CLPM's paths it is to be compared with"


def _simulate() -> tuple[pd.DataFrame, dict]:
    """300 patients of 30 therapists, 7 sessions, MAR dropout; cross-lags −0.20 / −0.10, carry-overs 0.40."""
    rng = np.random.default_rng(20260111)
    long, truth = simulate_process(ProcessParams(n_sessions=7), 300, rng, dropout=DropoutParams(intercept=-3.0))
    long = long.rename(columns={"alliance_score": "alliance", "symptom_score": "symptoms"})
    long["patient"] = [f"P{p:04d}" for p in long["patient"]]
    long.insert(1, "therapist", [f"T{int(p[1:]) % 30:03d}" for p in long["patient"]])
    return long, truth


def write_run(root: Path) -> dict:
    """Fit the RI-CLPM and the lagged mixed models, write their directories and a truth file."""
    long, truth = _simulate()
    analysis = analysis_table(long)
    results = root / "results"
    tables = fit_riclpm_model(RICLPM, analysis)
    out = results / "models" / RICLPM["name"]
    out.mkdir(parents=True)
    for key in RICLPM_TABLES:
        write_csv(tables[key], out / f"{key}.csv")
    write_json(tables["fit"], out / "fit.json")
    context = model_context(demo_config())
    for model in LAGGED:
        fitted = fit_model(model, analysis, None, context)
        out = results / "models" / model["name"]
        out.mkdir(parents=True)
        write_csv(fitted["fixed"], out / "fixed_effects.csv")
        write_json(fitted["fit"], out / "fit.json")
    paths = truth["riclpm"]
    estimands = {
        RICLPM["name"]: {**{p: paths[p] for p in ("alpha", "beta", "gamma", "delta")}, "long_run": truth["long_run"]},
        "lagged_raw": {
            "targets": TARGETS,
            "alliance_within_patient": {"value": paths["gamma"], "units": "within-person SD"},
            "symptoms": paths["delta"],
        },
        "lagged_reverse": {"symptoms_within_patient": paths["beta"], "alliance": 5.0},  # a truth no CI covers
    }
    truth_path = root / "TRUTH.yaml"
    truth_path.write_text(yaml.safe_dump({"seed": 1, "lagged": {"estimands": estimands}}, sort_keys=False))
    return {"results": results, "truth_path": truth_path}


def section_context(
    results: Path, truth_path: Path | None, riclpm: list[dict] | None = None, configured: list[str] | None = None
) -> dict:
    """The section's context from the files on disk, as render_report.py reads them."""
    names = [m["name"] for m in LAGGED]
    fits = [json.loads((results / "models" / n / "fit.json").read_text()) for n in names]
    fixed = [pd.read_csv(results / "models" / n / "fixed_effects.csv") for n in names]
    if riclpm is None:
        riclpm = [L.read_riclpm(results / "models" / RICLPM["name"] / "fit.json")]
    return L.lagged_section(
        fits,
        fixed,
        riclpm,
        configured_riclpm=[RICLPM["name"]] if configured is None else configured,
        truth=truth_module.read_truth(truth_path),
        truth_path=str(truth_path),
        config=demo_config(),
    )


def render(lagged: dict, figures: dict | None = None) -> str:
    """The section alone, through the report's own template and formatters (``figures``: name -> PNG)."""
    figures = figures or {}
    return H.render_html(
        {
            "lagged": lagged,
            "alliance_unit": "mean item-score points",
            "outcome_unit": "POMP points",
            "figures": {n: H.embed_png(p) for n, p in figures.items()},
            "captions": {n: W.caption(n) for n in figures},
            "figure_alt": W.figure_alt_texts({"citation": "x"}),
        },
        template="lagged_dynamics.html.j2",
    )


def words(html: str) -> str:
    """The text of the HTML as a reader sees it: inline tags dropped, others a space, whitespace collapsed."""
    inline = re.sub(r"</?(span|code|strong|em|wbr)\b[^>]*>", "", html)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", inline)).split())


def tables(results: Path, truth_path: Path | None) -> dict:
    """The run's tables as a reader reads them (tests/testkit/reports.py)."""
    names = [m["name"] for m in LAGGED]
    return {
        "fixed": {n: pd.read_csv(results / "models" / n / "fixed_effects.csv") for n in names},
        "riclpm": {RICLPM["name"]: read_riclpm_tables(results / "models" / RICLPM["name"])},
        "truth": yaml.safe_load(truth_path.read_text()) if truth_path else None,
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("lagged")
    with pytest.warns(RICLPMWarning, match="few_clusters"):  # 30 therapists for more parameters
        files = write_run(root)
    lagged = section_context(files["results"], files["truth_path"])
    return {**files, "lagged": lagged, "html": render(lagged)}


# --------------------------------------------------------------------------- the RI-CLPM


def test_both_directions_with_long_run_effects_fit_indices_and_the_constraint_test(run):
    html, text = run["html"], words(run["html"])
    assert SECTION in parse(html).headings
    parameters = pd.read_csv(run["results"] / "models" / RICLPM["name"] / "parameters.csv").set_index(["paths", "name"])
    model = run["lagged"]["riclpm"][0]
    assert [r["name"] for r in model["paths"]] == ["gamma", "beta", "alpha", "delta"]  # both cross-lags first
    for row in model["paths"]:  # quoted, never recomputed
        written = parameters.loc[("constrained", row["name"])]
        for column in ("estimate", "se", "ci_low", "ci_high"):
            assert row[column] == written[column]
    gamma = model["paths"][0]
    shown = f"{W.fmt(gamma['estimate'], gamma['digits'])} {W.fmt(gamma['se'], gamma['digits'])}"
    assert f"cross-lag alliance → next symptoms {shown}" in text
    assert "cross-lag symptoms → next alliance" in text and "carry-over symptoms → next symptoms" in text
    test = pd.read_csv(run["results"] / "models" / RICLPM["name"] / "constraint_test.csv").iloc[0]
    assert f"χ²({int(test['df_diff'])}) = {W.fmt(test['chisq_diff'], 2)}" in text
    assert "(I − B)⁻¹ = I + B + B² + …" in text and "element [symptoms, alliance] = γ / det(I − B)" in text
    assert (
        "alliance → symptoms (long-run cross effect)" in text and "symptoms → alliance (long-run cross effect)" in text
    )
    indices = pd.read_csv(run["results"] / "models" / RICLPM["name"] / "fit_indices.csv").set_index("paths")
    for column in ("chisq", "cfi", "tli", "rmsea", "srmr"):
        assert f'data-source="riclpm¦{RICLPM["name"]}¦fit_indices¦constrained¦{column}"' in html
    assert f"{W.fmt(indices.loc['constrained', 'cfi'], 3)}" in text


def test_sample_waves_patterns_and_clustering_are_stated(run):
    text = words(run["html"])
    fit = json.loads((run["results"] / "models" / RICLPM["name"] / "fit.json").read_text())
    assert "Waves are session numbers 1 to 5 (K = 5)" in text
    assert f"{fit['sample']['patients_with_a_wave']} of the {fit['sample']['patients_in_table']} patients" in text
    assert f"{fit['fits']['constrained']['n_patterns']} missing-data patterns" in text
    assert "cluster-robust SEs over therapist" in text and "30 clusters" in text
    assert "missing at random" in text
    by_wave = fit["sample"]["observed_symptoms_by_wave"]
    assert by_wave[0] > by_wave[-1]  # the dropout is visible in the table of observed scores
    assert (
        f'<td>5</td><td><span class="num" data-source="riclpm¦{RICLPM["name"]}¦sample¦observed_alliance_by_wave¦4">'
        in run["html"]
    )


def test_every_flag_of_the_fit_is_shown_with_its_meaning(run):
    model = run["lagged"]["riclpm"][0]
    assert "few_clusters" in model["flags"]  # 30 therapists for more parameters: the sandwich is singular
    text = words(run["html"])
    assert "few_clusters (constrained and free fits): there are no more clusters than parameters" in text
    assert not model["unusable"] and "are not results" not in text


def _with(tables: dict, **changes) -> dict:
    """A copy of an RI-CLPM's tables with fit.json's flags and fit_indices.csv's converged changed."""
    out = {k: (v.copy() if isinstance(v, pd.DataFrame) else copy.deepcopy(v)) for k, v in tables.items()}
    if "flags" in changes:
        out["fit"]["flags"] = changes["flags"]
        for part in out["fit"]["fits"].values():
            part["flags"] = list(changes["flags"])
        for name in RICLPM_TABLES:
            out[name]["flags"] = ";".join(changes["flags"]) or "none"
    if "converged" in changes:  # True/False for both fits, or {paths: value}
        values = changes["converged"]
        for paths, value in values.items() if isinstance(values, dict) else (("constrained", values), ("free", values)):
            out["fit_indices"].loc[out["fit_indices"]["paths"] == paths, "converged"] = value
    return out


def test_a_non_converged_or_non_positive_definite_fit_is_never_shown_unflagged(run):
    tables = L.read_riclpm(run["results"] / "models" / RICLPM["name"] / "fit.json")
    # the fit says it did not converge, but no table carries the flag: the report raises it itself
    silent = _with(tables, flags=[], converged=False)
    model = L.riclpm_context(silent)
    assert model["flags"] == ["not_converged"] and model["unusable"] == ["not_converged"]
    text = words(render(L.lagged_section([], [], [silent], configured_riclpm=[RICLPM["name"]])))
    assert (
        "This fit carries the flag not_converged: its estimates are shown for inspection only and are not results."
        in text
    )
    assert "Converged" in text and " NO " in text
    improper = _with(tables, flags=["not_positive_definite", "boundary"])
    html = render(L.lagged_section([], [], [improper], configured_riclpm=[RICLPM["name"]]))
    text = words(html)
    assert "This fit carries the flag not_positive_definite" in text
    assert (
        "not_positive_definite (constrained and free fits): a covariance matrix of the model" in text
        and "boundary (constrained and free fits): a variance is estimated" in text
    )
    findings = re.findall(r'<span class="flag">([^<]*)</span>', html)
    assert "not_positive_definite, boundary" in findings  # on the rows of the tables too
    assert L.riclpm_flags({"fit": {"flags": ["not_stationary"]}}) == ["not_stationary"]


def test_a_flag_of_the_free_fit_is_named_with_its_fit(run):
    tables = L.read_riclpm(run["results"] / "models" / RICLPM["name"] / "fit.json")
    free_failed = _with(tables, flags=[], converged={"constrained": True, "free": False})
    model = L.riclpm_context(free_failed)
    assert model["fit_flags"] == {"constrained": [], "free": ["not_converged"]}
    assert model["unusable"] == [] and model["test_unusable"] == ["not_converged"]
    assert all(r["flag_list"] == [] for r in model["paths"] + model["long_run"])  # the reported estimates
    text = words(render(L.lagged_section([], [], [free_failed])))
    assert (
        "The free-paths fit carries the flag not_converged: the likelihood-ratio test of equal paths is not reliable."
        in text
    )
    assert "Flags: not_converged (free fit): the optimiser did not reach" in text
    assert "are not results" not in text


def test_free_paths_are_shown_per_wave_when_they_are_the_reported_fit(run):
    files = L.read_riclpm(run["results"] / "models" / RICLPM["name"] / "fit.json")
    free = _with(files)
    free["fit"]["paths"] = "free"
    model = L.riclpm_context(free)
    assert [r["name"] for r in model["paths"]] == ["gamma", "beta", "alpha", "delta"]  # the constrained fit, always
    assert [r["name"] for r in model["free_paths"]][:4] == ["gamma2", "gamma3", "gamma4", "gamma5"]
    html = render(L.lagged_section([], [], [free]))
    assert f"<caption>Lagged paths free per wave (the reported fit): {RICLPM['label']}</caption>" in html
    assert f'data-source="riclpm¦{RICLPM["name"]}¦parameters¦free¦beta3¦estimate"' in html
    check_numbers(html, tables(run["results"], None))


# --------------------------------------------------------------------------- beside the lagged multilevel models


def test_lagged_multilevel_models_sit_beside_the_riclpm_with_their_known_bias(run):
    html, text = run["html"], words(run["html"])
    table = html.split(
        "<caption>Cross-lags and carry-overs: the RI-CLPM and the lagged multilevel specifications</caption>"
    )[1]
    table = table.split("</table>")[0]
    rows = re.findall(r"<tr><td>(.*?)</td><td class=\"text\">(.*?)</td>", table)
    shown = [(re.sub(r"<[^>]+>", "", m), what) for m, what in rows]
    assert shown == [
        (RICLPM["label"], "cross-lag alliance → next symptoms"),
        (RICLPM["label"], "cross-lag symptoms → next alliance"),
        (RICLPM["label"], "carry-over alliance → next alliance"),
        (RICLPM["label"], "carry-over symptoms → next symptoms"),
        (LAGGED[0]["label"], "cross-lag alliance → next symptoms"),
        (LAGGED[0]["label"], "carry-over symptoms → next symptoms"),
        (LAGGED[1]["label"], "cross-lag symptoms → next alliance"),
        (LAGGED[1]["label"], "carry-over alliance → next alliance"),
    ]
    assert RAW_NOTE in text  # from fit.json (known_bias), beside the estimates
    assert 'data-source="fixed¦lagged_raw¦alliance_within_patient¦estimate"' in table
    assert "no known-bias note" in text  # lagged_reverse has none, and the report says so
    assert run["lagged"]["specs_without_note"] == ["lagged_reverse"]
    fixed = pd.read_csv(run["results"] / "models" / "lagged_raw" / "fixed_effects.csv").set_index("term")
    spec = next(s for s in run["lagged"]["specs"] if s["name"] == "lagged_raw")
    assert spec["rows"][0]["estimate"] == fixed.loc["alliance_within_patient", "estimate"]


def test_plain_words_on_what_a_lagged_association_shows(run):
    text = words(run["html"])
    for phrase in (
        "Temporal precedence within persons, not proof of causation",
        "Unmeasured time-varying confounders",
        "The lag must match the process",
        "Within- versus between-person",
        "the alliance is rated after each session and the symptoms before it",
    ):
        assert phrase in text


# --------------------------------------------------------------------------- the truth


def test_estimates_beside_the_truth_with_coverage(run):
    rows = run["lagged"]["truth"]["rows"]
    truth = yaml.safe_load(run["truth_path"].read_text())["lagged"]["estimands"]
    riclpm = {r["row"]["name"]: r for r in rows if r["model"] == RICLPM["name"] and "name" in r["row"]}
    assert set(riclpm) == {"alpha", "beta", "gamma", "delta"}
    for name, r in riclpm.items():
        assert r["truth"] == truth[RICLPM["name"]][name]
        assert r["covered"] == (r["row"]["ci_low"] <= r["truth"] <= r["row"]["ci_high"])
    long_run = [r for r in rows if r["model"] == RICLPM["name"] and "effect" in r["row"]]
    assert {r["row"]["effect"] for r in long_run} == {"x->y", "y->x", "x->x", "y->y"}
    assert long_run[0]["truth_source"] == f"truth¦lagged¦estimands¦{RICLPM['name']}¦long_run¦x->y"
    raw = next(r for r in rows if r["model"] == "lagged_raw" and r["row"]["term"] == "alliance_within_patient")
    assert raw["truth_source"] == "truth¦lagged¦estimands¦lagged_raw¦alliance_within_patient¦value"
    missed = next(r for r in rows if r["model"] == "lagged_reverse" and r["row"]["term"] == "alliance")
    assert missed["covered"] is False
    text = words(run["html"])
    assert "Estimates beside the known truth" in text and " no " in text and " yes " in text
    assert run["lagged"]["truth"]["targets"] == {"lagged_raw": TARGETS}  # the truth file's own words
    assert f"What the true values are, as the truth file states them: lagged_raw {TARGETS}" in text
    # the RI-CLPM recovers the cross-lags at this size (the simulation's seed is fixed)
    assert riclpm["gamma"]["covered"] and riclpm["beta"]["covered"]


def test_a_truth_file_without_estimands_and_no_truth_file(run, tmp_path):
    bare = tmp_path / "TRUTH.yaml"
    bare.write_text("seed: 1\n")
    text = words(render(section_context(run["results"], bare)))
    assert "gives no true value for the lagged estimates of this run (it has no estimands by model)" in text
    none = L.lagged_section([], [], None)
    assert none["truth"] is None and "Estimates beside the known truth" not in render(none)
    assert truth_module.read_truth(tmp_path / "absent.yaml") is None and truth_module.read_truth(None) is None


def test_the_truth_file_is_the_configured_one_or_the_one_beside_the_sessions(tmp_path):
    sessions = tmp_path / "raw" / "sessions.csv"
    sessions.parent.mkdir()
    sessions.write_text("patient\n")
    dataset = {"sessions": {"path": str(sessions)}}
    assert truth_module.truth_path(dataset) is None  # real data: no truth file
    (sessions.parent / "TRUTH.yaml").write_text("estimands: {}\n")
    assert truth_module.truth_path(dataset) == str(sessions.parent / "TRUTH.yaml")
    assert truth_module.truth_path({**dataset, "truth": "elsewhere/TRUTH.yaml"}) == "elsewhere/TRUTH.yaml"


# --------------------------------------------------------------------------- missing parts


def test_a_missing_riclpm_leaves_a_clear_sentence(run):
    text = words(render(section_context(run["results"], None, riclpm=[], configured=[])))
    assert (
        "No RI-CLPM was part of this run (config models has no entry with type: riclpm), so the two directions are not "
        "estimated net of carry-over and stable differences between patients."
    ) in text
    assert LAGGED[0]["label"] in text  # the lagged multilevel models are still shown, with their biases
    configured = words(render(section_context(run["results"], None, riclpm=[], configured=["riclpm_first7"])))
    assert "No RI-CLPM was part of this run: the configured model(s) riclpm_first7 left no tables" in configured
    nothing = words(render(L.lagged_section([], [], None)))
    assert "No lagged model (an outcome at session t + 1, or an RI-CLPM) was fitted in this run." in nothing


def test_missing_tables_of_an_riclpm_are_named_not_fatal(run):
    tables = L.read_riclpm(run["results"] / "models" / RICLPM["name"] / "fit.json")
    partial = {**tables, "long_run": None, "constraint_test": None}
    text = words(render(L.lagged_section([], [], [partial])))
    assert "Tables missing from the model's directory: long_run, constraint_test" in text
    assert "long_run.csv is missing: no long-run effects" in text
    assert "No likelihood-ratio test of the equality constraint was found" in text


# --------------------------------------------------------------------------- numbers


def test_every_quoted_number_ties_to_its_table(run):
    n = check_numbers(run["html"], tables(run["results"], run["truth_path"]))
    assert n > 100
    sources = {"¦".join(x["source"].split("¦")[:3]) for x in parse(run["html"]).numbers}
    for kind in ("parameters", "fit_indices", "long_run", "constraint_test", "sample"):
        assert f"riclpm¦{RICLPM['name']}¦{kind}" in sources
    assert {"fixed¦lagged_raw¦alliance_within_patient", "truth¦lagged¦estimands"} <= sources


def test_the_number_check_catches_a_number_that_is_not_its_tables(run):
    model = run["lagged"]["riclpm"][0]
    gamma = model["paths"][0]
    wrong = copy.deepcopy(run["lagged"])
    wrong["riclpm"][0]["paths"][0]["estimate"] = gamma["estimate"] + 10 ** -gamma["digits"] * 3
    with pytest.raises(AssertionError):
        check_numbers(render(wrong), tables(run["results"], run["truth_path"]))


def test_decimals_follow_the_standard_error():
    assert W.digits_for(0.0012) == 4 and W.digits_for(0.33) == 3 and W.digits_for(25.0) == 3
    assert W.digits_for(float("nan")) == 3 and W.digits_for(1e-9) == 6


# --------------------------------------------------------------------------- the figure


def test_the_figure_draws_the_rows_the_tables_quote(run, tmp_path):
    rows = LF.figure_rows(run["lagged"])
    model = run["lagged"]["riclpm"][0]
    riclpm = rows[rows["model"] == RICLPM["name"]].set_index("path")
    for r in model["paths"]:
        assert riclpm.loc[r["path"], "estimate"] == r["estimate"] and riclpm.loc[r["path"], "ci_low"] == r["ci_low"]
    truth = yaml.safe_load(run["truth_path"].read_text())["lagged"]["estimands"]
    assert riclpm.loc["gamma", "truth"] == truth[RICLPM["name"]]["gamma"]
    raw = rows[rows["model"] == "lagged_raw"].set_index("path")
    assert (
        list(raw.index) == ["gamma", "delta"]
        and raw.loc["gamma", "truth"] == truth["lagged_raw"]["alliance_within_patient"]["value"]
    )
    assert riclpm["flagged"].all()  # few_clusters: drawn hollow
    figure = LF.lagged_dynamics(run["lagged"])
    assert [ax.get_title() for ax in figure.axes if ax.axison] == list(LF.PANEL_TITLES.values())
    png = tmp_path / "lagged_dynamics.png"
    save(figure, png, tmp_path / "lagged_dynamics.svg")
    html = render(run["lagged"], {"lagged_dynamics": png})
    assert '<figure id="fig-lagged_dynamics"><img alt="Cross-lags in both directions' in html
    assert W.caption("lagged_dynamics")[:80] in words(html)
    empty = LF.lagged_dynamics(L.lagged_section([], [], None))
    assert [t.get_text() for t in empty.axes[0].texts] == ["No lagged model (RI-CLPM or lagged multilevel) in this run"]
