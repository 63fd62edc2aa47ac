"""The narrative report: its tables, equations and checklist from real fits, and every number
quoted in its text tied back to the result tables it claims to come from."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import markupsafe
import numpy as np
import pandas as pd
import pytest
import yaml

from alliance.dynamics.riclpm import RICLPMWarning
from alliance.engines.dispatch import fit
from alliance.intake.registry import load_registry
from alliance.models.config import model_context
from alliance.models.riclpm_suite import RICLPM_TABLES, fit_riclpm_model
from alliance.models.specs import complete_cases, spec_from_config
from alliance.models.suite import fit_model
from alliance.outputs import write_csv, write_json
from alliance.report import context as C
from alliance.report import diagnostic_figures as D
from alliance.report import equations as E
from alliance.report import figures as F
from alliance.report import html as H
from alliance.report import lagged as L
from alliance.report import pdf as P
from alliance.report import tables as T
from alliance.report import truth as truth_module
from alliance.report import wording as W
from testkit.reports import check_numbers, parse, tables_from_disk
from testkit.trials import effects_table, make_trial

# --------------------------------------------------------------------------- fixture: a rendered report


NAMES = ["same_session", "three_level", "early_alliance"]
#: the RI-CLPM of the fixture run, named as the simulator's truth names the suite's (TRUTH.yaml estimands)
RICLPM = {
    "name": "riclpm",
    "type": "riclpm",
    "variables": {"alliance": "alliance", "symptoms": "symptoms"},
    "waves": 5,
    "cluster": "therapist",
}


def truth_file(trial: dict) -> Path:
    """The simulated trial's TRUTH.yaml (beside its sessions file)."""
    return Path(trial["config"]["dataset"]["sessions"]["path"]).parent / "TRUTH.yaml"


def render_run(root: Path, trial: dict, fitted: dict, benchmark: dict) -> dict:
    """Write the fitted models' tables to CSV, read them back and render the report, as the workflow does
    (``benchmark``: config report.benchmark)."""
    results = root / "results"
    names = NAMES
    for model in names:
        tables = fitted[model]
        out = results / "models" / model
        out.mkdir(parents=True)
        for key, file in (
            ("fixed", "fixed_effects"),
            ("variance", "variance_components"),
            ("contrasts", "contrasts"),
            ("effects", "effects"),
            ("random_effects", "random_effects"),
        ):
            write_csv(tables[key], out / f"{file}.csv")
        write_json(tables["fit"], out / "fit.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RICLPMWarning)  # its flags are in its tables (12 therapists: few_clusters)
        riclpm = fit_riclpm_model(RICLPM, trial["analysis"])
    out = results / "models" / RICLPM["name"]
    out.mkdir(parents=True)
    for key in RICLPM_TABLES:
        write_csv(riclpm[key], out / f"{key}.csv")
    write_json(riclpm["fit"], out / "fit.json")
    (results / "clean").mkdir()
    (results / "report").mkdir()
    (results / "effects").mkdir()
    (results / "clean" / "summary.json").write_text(json.dumps(trial["summary"], default=float))
    effects = effects_table()
    effects.to_csv(results / "effects" / "alliance_effects.csv", index=False)
    fits = [json.loads((results / "models" / m / "fit.json").read_text()) for m in sorted(names)]
    fixed = [pd.read_csv(results / "models" / m / "fixed_effects.csv") for m in sorted(names)]
    variance = [pd.read_csv(results / "models" / m / "variance_components.csv") for m in sorted(names)]
    write_csv(T.table1(trial["patients"]), results / "report" / "table1.csv")
    write_csv(T.model_comparison(fits, fixed), results / "report" / "model_comparison.csv")
    figures = {}
    for name, figure in {
        "trajectories_symptoms": F.trajectories(trial["analysis"], "symptoms", ylabel="Symptoms", seed=1),
        "flow_diagram": D.exclusion_flow(trial["flow"]),
        "alliance_forest": F.alliance_forest(effects, benchmark),
        "therapist_effects": D.therapist_caterpillar(trial["random_effects"]),
        "diagnostics_three_level": D.model_diagnostics(trial["residuals"], trial["random_effects"]),
    }.items():
        figures[name] = root / f"{name}.png"
        F.save(figure, figures[name])
    context = C.report_context(
        title="Fixture report",
        summary=json.loads((results / "clean" / "summary.json").read_text()),
        flow=trial["flow"],
        findings=trial["findings"],
        fits=fits,
        fixed=fixed,
        variance=variance,
        analysis=trial["analysis"],
        table1=pd.read_csv(results / "report" / "table1.csv"),
        comparison=pd.read_csv(results / "report" / "model_comparison.csv"),
        dictionary=trial["dictionary"],
        figures=figures,
        config=trial["config"],
        registry=load_registry(),
        benchmark=benchmark,
        effects=pd.read_csv(results / "effects" / "alliance_effects.csv"),
        patients=trial["patients"],
        model_order=names,
        primary_model="same_session",
        run_date="2026-01-01 00:00 UTC",
        pdf_tool="Chromium test",
        riclpm=[L.read_riclpm(out / "fit.json")],
        configured_riclpm=[RICLPM["name"]],
        truth=truth_module.read_truth(truth_file(trial)),
        truth_path=str(truth_file(trial)),
        measure_reliability=trial["reliability"],
    )
    return {
        "html": H.render_html(context),
        "supplement": H.render_html(context, "supplement.html.j2"),
        "context": context,
        "results": results,
        "trial": trial,
        "figures": figures,
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, benchmark) -> dict:
    """A report rendered from a small trial (fitted with the default engine)."""
    root = tmp_path_factory.mktemp("report")
    trial = make_trial(root / "raw")
    return render_run(root, trial, trial["fitted"], benchmark)


@pytest.fixture(scope="module")
def rendered_statsmodels(rendered, tmp_path_factory, benchmark) -> dict:
    """The same trial and models fitted with the statsmodels engine (Wald z, several optimisers)."""
    trial = rendered["trial"]
    context = model_context(trial["config"])
    fitted = {
        name: fit_model(trial["models"][name], trial["analysis"], trial["patients"], context, engine="statsmodels")
        for name in NAMES
    }
    return render_run(tmp_path_factory.mktemp("report_statsmodels"), trial, fitted, benchmark)


@pytest.fixture(scope="module")
def rendered_mixedlm(rendered, tmp_path_factory, benchmark) -> dict:
    """The same trial and models fitted with the mixedlm engine (Satterthwaite df): the default
    run when mixedlm is the default engine."""
    pytest.importorskip("mixedlm")
    trial = rendered["trial"]
    if all(trial["fitted"][name]["fit"]["fit"].get("engine") == "mixedlm" for name in NAMES):
        return rendered
    context = model_context(trial["config"])
    fitted = {
        name: fit_model(trial["models"][name], trial["analysis"], trial["patients"], context, engine="mixedlm")
        for name in NAMES
    }
    return render_run(tmp_path_factory.mktemp("report_mixedlm"), trial, fitted, benchmark)


# --------------------------------------------------------------------------- tables


def test_table1_counts_and_summaries(rendered):
    patients = rendered["trial"]["patients"]
    t1 = pd.read_csv(rendered["results"] / "report" / "table1.csv")
    total = t1[(t1["therapy"] == "all") & (t1["condition"] == "all")].iloc[0]
    assert total["patients"] == len(patients) == 72
    assert total["therapists"] == 12
    assert total["dropout_pct"] == pytest.approx(100 * patients["dropout"].astype(bool).mean())
    cell = t1[(t1["therapy"] == "PDT") & (t1["condition"] == "anxiety")].iloc[0]
    rows = patients[(patients["therapy"] == "PDT") & (patients["condition"] == "anxiety")]
    assert cell["patients"] == len(rows)
    assert cell["sessions_mean"] == pytest.approx(rows["n_sessions"].mean())
    assert cell["baseline_sd"] == pytest.approx(rows["symptoms_baseline"].std())
    assert cell["sex: female %"] == pytest.approx(100 * (rows["sex"] == "female").mean())
    assert sum(cell[c] for c in t1.columns if c.startswith("age: ")) == pytest.approx(100)
    per_therapy = t1[(t1["condition"] == "all") & (t1["therapy"] != "all")]
    assert per_therapy["patients"].sum() == 72


def test_model_comparison_lists_every_alliance_coefficient(rendered):
    comparison = pd.read_csv(rendered["results"] / "report" / "model_comparison.csv")
    assert list(zip(comparison["model"], comparison["term"], comparison["role"])) == [
        ("early_alliance", "alliance_s3", "patient_level"),
        ("same_session", "alliance_within_patient", "within_patient"),
        ("same_session", "alliance_between_patient", "between_patient"),
        ("three_level", "alliance_within_patient", "within_patient"),
        ("three_level", "alliance_patient_within_therapist", "patient_within_therapist"),
        ("three_level", "alliance_between_therapist", "between_therapist"),
    ]
    assert set(comparison.loc[comparison["model"] == "early_alliance", "data"]) == {"patients"}
    fixed = rendered["trial"]["three_tables"]["fixed"].set_index("term")
    row = comparison[
        (comparison["model"] == "three_level") & (comparison["term"] == "alliance_between_therapist")
    ].iloc[0]
    assert row["estimate"] == pytest.approx(fixed.loc["alliance_between_therapist", "estimate"])
    assert row["n_obs"] == rendered["trial"]["three_tables"]["fit"]["fit"]["n_obs"]


def test_contextual_effect_is_the_model_stage_contrast(rendered):
    spec = spec_from_config(rendered["trial"]["models"]["same_session"])
    engine = fit(spec, complete_cases(spec, rendered["trial"]["analysis"]))
    expected = engine.contrast({"alliance_between_patient": 1, "alliance_within_patient": -1})
    shown = rendered["context"]["primary"]
    written = (
        pd.read_csv(rendered["results"] / "models" / "same_session" / "contrasts.csv")
        .set_index("name")
        .loc["contextual"]
    )
    assert shown["contextual_source"] == "contrast¦same_session¦contextual"
    for column in ("estimate", "se", "ci_low", "ci_high"):  # quoted from the model stage, not recomputed
        assert shown["contextual"][column] == pytest.approx(written[column], rel=1e-9)
    assert shown["contextual"]["estimate"] == pytest.approx(expected["estimate"], rel=1e-6)
    assert shown["contextual"]["se"] == pytest.approx(expected["se"], rel=1e-6)
    assert C.contextual_contrast(rendered["trial"]["three_tables"]["fit"]) is None


def test_contextual_effect_is_found_by_its_weights_and_never_computed():
    row = {"kind": "contrast", "name": "ctx", "estimate": 0.5, "se": 0.2, "ci_low": 0.1, "ci_high": 0.9}
    weights = {"alliance_between_patient": 1, "alliance_within_patient": -1}
    fit_json = {"contrasts": [row], "config": {"contrasts": [{"name": "ctx", "weights": weights}]}}
    assert C.contextual_contrast(fit_json) == row
    other = {"contrasts": [row], "config": {"contrasts": [{"name": "ctx", "weights": {"alliance_within_patient": 1}}]}}
    assert C.contextual_contrast(other) is None
    # both terms and their covariance, but no contrast configured: the report does not compute one, it says so
    unconfigured = {
        "spec": {"name": "m", "fixed": list(weights), "random": [{"group": "patient"}], "outcome": "y"},
        "fixed": [{"term": t, "estimate": 1.0} for t in weights],
        "vcov": {"terms": list(weights), "matrix": [[1.0, 0.0], [0.0, 1.0]]},
        "fit": {},
        "contrasts": [],
    }
    model = C.model_context(
        unconfigured,
        pd.DataFrame({"term": list(weights), "estimate": [1.0, 1.0]}),
        pd.DataFrame(columns=["group", "term", "variance"]),
        meaning={},
        analysis=pd.DataFrame(),
        patients=None,
        figures={},
    )
    assert model["contextual"] is None and model["contextual_not_configured"]


def test_therapist_reliability_is_the_anova_estimate_over_patient_means():
    # balanced therapists of 8 patients with one session each: lambda = (MSB - MSW) / MSB (ICC(k))
    rng = np.random.default_rng(3)
    therapists = np.repeat(np.arange(200), 8)
    values = rng.normal(0, 1.0, 200)[therapists] + rng.normal(0, 2.0, len(therapists))
    sessions = pd.DataFrame(
        {"patient": [f"p{k:04d}" for k in range(len(values))], "therapist": therapists, "alliance": values}
    )
    got = C.therapist_mean_reliability(sessions)
    frame = pd.DataFrame({"y": values, "g": therapists})
    means = frame.groupby("g")["y"].mean()
    msb = 8 * ((means - values.mean()) ** 2).sum() / 199
    msw = ((frame["y"] - frame["g"].map(means)) ** 2).sum() / (len(values) - 200)
    assert got["mean"] == pytest.approx((msb - msw) / msb)
    assert got["min"] == pytest.approx(got["max"]) and got["groups"] == 200
    assert got["mean"] == pytest.approx(1.0 / (1.0 + 4.0 / 8), abs=0.06)  # true tau2 1, sigma2 4, n 8
    assert C.therapist_mean_reliability(sessions.drop(columns="therapist")) is None


def test_patient_reliability_is_the_intake_summary(rendered):
    shown = rendered["context"]["reliability"]["patient"]
    written = rendered["trial"]["summary"]["person_mean_reliability"]
    assert shown["source"] == "summary" and shown["mean"] == written["mean"] and shown["min"] == written["min"]
    assert C.alliance_reliability({}, rendered["trial"]["analysis"])["patient"] is None  # not recomputed


def test_variance_shares_are_the_model_stage_iccs(rendered):
    three = next(m for m in rendered["context"]["models"] if m["name"] == "three_level")
    written = pd.read_csv(rendered["results"] / "models" / "three_level" / "effects.csv")
    iccs = written[written["statistic"] == "icc"].set_index("group")["value"]
    assert three["shares"] == pytest.approx(iccs.to_dict(), rel=1e-9)
    variance = rendered["trial"]["three_tables"]["variance"]
    v = variance.set_index(["group", "term"])["variance"]
    total = v[("Residual", "Residual")] + sum(v[k] for k in v.index if k[1] == "Intercept")
    # the fixture's three_level fit is singular, refitted without its therapist level (test_singular_report.py)
    assert list(three["shares"]) == ["therapist:patient"]
    share = three["shares"]["therapist:patient"]
    assert share == pytest.approx(v[("therapist:patient", "Intercept")] / total)
    checklist = rendered["context"]["checklist_frame"].set_index("item")
    assert f"three_level: therapist:patient {W.pct(iccs['therapist:patient'])}%" in checklist.loc[5, "answer"]


# --------------------------------------------------------------------------- equations and text


def test_equations_per_level_of_the_same_session_model(rendered):
    fit = rendered["trial"]["same"]["fit"]
    blocks = E.model_equations(fit["spec"], rendered["trial"]["analysis"], fit["fit"]["n_groups"])
    assert [b["level"] for b in blocks] == ["Level 1 (session t)", "Level 2 (patient i)"]
    assert blocks[0]["lines"][0] == "symptomsₜᵢ = π₀ᵢ + π₁ᵢ·alliance_within_patientₜᵢ + β₃·session_cₜᵢ + eₜᵢ"
    assert blocks[1]["lines"] == [
        "π₀ᵢ = β₀ + β₂·alliance_between_patientᵢ + u₀ᵢ",
        "π₁ᵢ = β₁ + u₁ᵢ",
        "(u₀ᵢ, u₁ᵢ) ~ N(0, T[patient]), unstructured covariance (correlated)",
    ]


def test_equations_put_each_predictor_at_its_level(rendered):
    fit = rendered["trial"]["three_tables"]["fit"]
    correlated = "(1 + alliance_within_patient | therapist:patient)"
    assert correlated in fit["lme4_formula"]
    independent = fit["lme4_formula"].replace(correlated, "(1 + alliance_within_patient || therapist:patient)")
    blocks = E.model_equations(  # as an engine that fits the slope independently (statsmodels) reports it
        fit["spec"],
        rendered["trial"]["analysis"],
        fit["fit"]["n_groups"],
        roles=fit["config"]["roles"],
        fitted_formula=independent,
    )
    text = {b["level"]: "\n".join(b["lines"]) for b in blocks}
    assert set(text) == {"Level 1 (session t)", "Level 2 (patient i within therapist)", "Level 3 (therapist j)"}
    assert "β₂·alliance_patient_within_therapistᵢⱼ" in text["Level 2 (patient i within therapist)"]
    assert "γ₀ⱼ = β₀ + β₃·alliance_between_therapistⱼ + v₀ⱼ" in text["Level 3 (therapist j)"]
    assert "independent: diagonal covariance (lme4 ||)" in text["Level 2 (patient i within therapist)"]
    assert "β₄·symptomsₜᵢⱼ + β₅·session_cₜᵢⱼ" in text["Level 1 (session t)"]
    # as specified (correlated), the same structure reads as lme4 would fit it
    as_specified = E.model_equations(fit["spec"], rendered["trial"]["analysis"], fit["fit"]["n_groups"])
    assert "unstructured covariance (correlated)" in "\n".join(as_specified[1]["lines"])


def test_equations_of_a_patient_level_model(rendered):
    fit = rendered["trial"]["fitted"]["early_alliance"]["fit"]
    blocks = E.model_equations(
        fit["spec"], rendered["trial"]["patients"], fit["fit"]["n_groups"], roles=fit["config"]["roles"], unit="patient"
    )
    assert [b["level"] for b in blocks] == ["Level 1 (patient i)", "Level 2 (therapist j)"]
    assert blocks[0]["lines"][0] == "symptoms_lastᵢⱼ = π₀ⱼ + β₁·symptoms_baseline_cᵢⱼ + β₂·alliance_s3ᵢⱼ + eᵢⱼ"
    assert blocks[1]["lines"] == ["π₀ⱼ = β₀ + u₀ⱼ", "u₀ⱼ ~ N(0, τ²[therapist])"]


def test_coefficient_labels_name_the_beta_of_every_row():
    terms = ["alliance_within_patient", "session_c", "therapy", "alliance_within_patient:therapy"]
    assert E.coefficient_label("Intercept", terms) == "β0"
    assert E.coefficient_label("session_c", terms) == "β2"
    assert E.coefficient_label("therapy[T.IPT]", terms) == "β3 (IPT)"
    assert E.coefficient_label("alliance_within_patient:therapy[T.PDT]", terms) == "β4 (PDT)"


def test_number_formatting_round_trips():
    assert W.fmt(-8.127, 2) == "−8.13" and W.parse_number("−8.13") == -8.13
    assert W.fmt(-0.0004, 2) == "−4.00e−04"
    assert W.fmt(-0.004, 2) == "−4.00e−03" and W.fmt(-0.014, 2) == "−0.01" and W.fmt(0.0, 2) == "0.00"
    assert W.fmt_r(0.2784) == ".278" and W.parse_number(".278") == 0.278
    assert W.fmt_r(-0.31, 2) == "−.31" and W.parse_number("−.31") == -0.31
    assert W.fmt(None) == "–" and W.fmt(float("nan")) == "–" and W.fmt(7086) == "7,086"
    assert W.fmt_p(0.0004) == "< .001" and W.fmt_p(0.0234) == ".023"
    assert W.decimals("−8.13") == 2 and W.decimals("600") == 0


def test_citations_carry_no_live_links():
    registry = load_registry()
    text = W.citation_text(registry["PHQ-9"].citation)
    assert "http" not in text and "doi:10.1046/j.1525-1497.2001.016009606.x" in text


def test_instrument_rows_state_prorating_rule_and_check_status(rendered):
    rows = {r["measure"]: r for r in T.instrument_rows(rendered["trial"]["config"], load_registry())}
    assert rows["alliance"]["role"] == "alliance"
    assert rows["phq9"]["role"] == "primary outcome for depression"
    assert rows["phq9"]["prorate_max_missing"] == 1 and rows["phq9"]["checked"] is False
    assert rows["phq9"]["unchecked_fields"] == "prorate_max_missing"
    assert rows["alliance"]["items"] == "12 × 1–5"
    assert "Hatcher" in rows["alliance"]["citation"]


def test_reviewer_checklist_is_filled_from_the_run(rendered):
    checklist = rendered["context"]["checklist_frame"]
    assert list(checklist["item"]) == list(range(1, 11))
    assert set(checklist["status"]) <= set(T.STATUS)
    answers = dict(zip(checklist["item"], checklist["answer"]))
    fit = rendered["trial"]["same"]["fit"]["fit"]
    assert f"same_session {fit['n_obs']}" in answers[6]
    engine = rendered["trial"]["same"]["fit"]["fit"]["engine"]
    assert "Estimation: REML (all 3 models)" in answers[3] and f"Engine: {engine} " in answers[3]
    # contrasts and joint tests with the engine's df method (alliance.engines.ddf)
    assert ("F tests with Satterthwaite denominator" if engine in ("mixedlm", "lme4") else "Wald z") in answers[4]
    assert "diagnostics" not in answers[8] or "three_level" in answers[8]
    assert "with the therapist level (three_level, early_alliance)" in answers[10]
    assert "Marginal and conditional R²" in answers[9]
    assert "r-equivalents (r from t) of the alliance coefficients, and per therapy" in answers[9]


# --------------------------------------------------------------------------- the rendered HTML


def test_every_quoted_number_ties_to_its_table(rendered):
    tables = tables_from_disk(rendered["results"], effects=True, truth=truth_file(rendered["trial"]))
    assert check_numbers(rendered["html"], tables) > 50  # the main report
    assert check_numbers(rendered["supplement"], tables) > 100
    main = {x["source"].split("¦")[0] for x in parse(rendered["html"]).numbers}
    assert {"fixed", "variance", "table1", "summary", "modeleffect", "riclpm", "truth"} <= main
    sources = {x["source"].split("¦")[0] for x in parse(rendered["supplement"]).numbers}
    assert {
        "fixed",
        "variance",
        "table1",
        "summary",
        "effects",
        "comparison",
        "contrast",
        "fit",
        "modeleffect",
        "riclpm",
        "truth",
    } <= sources


def test_findings_say_which_comes_first_from_the_riclpm(rendered):
    findings = rendered["html"].split('id="findings"')[1].split('id="sample"')[0]
    words = " ".join(re.sub(r"<[^>]+>", "", findings).split())
    parameters = pd.read_csv(rendered["results"] / "models" / "riclpm" / "parameters.csv").set_index(["paths", "name"])
    gamma = parameters.loc[("constrained", "gamma")]
    digits = W.digits_for(gamma["se"])
    assert (
        "Which comes first (section 7, random-intercept cross-lagged panel model on sessions 1 to 5): "
        f"alliance → next symptoms "
        f"{W.fmt(gamma['estimate'], digits)} (95% CI {W.fmt(gamma['ci_low'], digits)} to"
    ) in words
    assert "symptoms → next alliance" in words and "not that one causes the other" in words
    assert 'data-source="riclpm¦riclpm¦parameters¦constrained¦beta¦estimate"' in findings


def test_the_section_reads_the_simulators_truth_file(rendered):
    estimands = yaml.safe_load(truth_file(rendered["trial"]).read_text())["estimands"]
    rows = rendered["context"]["lagged"]["truth"]["rows"]
    shown = {(r["model"], r["row"].get("name") or r["row"].get("term") or r["row"]["effect"]): r["truth"] for r in rows}
    for path in ("alpha", "beta", "gamma", "delta"):
        assert shown[("riclpm", path)] == estimands["riclpm"][path]
    assert shown[("three_level", "alliance_within_patient")] == estimands["three_level"]["alliance_within_patient"]
    assert {r["row"]["effect"] for r in rows if "effect" in r["row"]} == set(estimands["riclpm"]["long_run"])
    targets = rendered["context"]["lagged"]["truth"]["targets"]
    assert targets["three_level"] == estimands["three_level"]["targets"]


def test_findings_quote_the_primary_estimate_in_words(rendered):
    html = rendered["html"]
    fixed = rendered["trial"]["same"]["fixed"].set_index("term")
    within = W.fmt(fixed.loc["alliance_within_patient", "estimate"], 2)
    findings = html.split('id="findings"')[1].split('id="sample"')[0]
    text = re.sub(r"<[^>]+>", "", findings)
    assert f"symptoms differed by {within} points" in " ".join(text.split())
    words = " ".join(text.split())
    # like with like: the benchmark beside the patient-level model's r (with improvement), not the within-patient r
    early = next(
        e for e in rendered["trial"]["fitted"]["early_alliance"]["fit"]["effects"] if e["statistic"] == "r_from_t"
    )
    r, low, high = (W.fmt_r(-early[k], 2) for k in ("value", "ci_high", "ci_low"))
    assert f"Session-3 alliance and end-of-treatment symptoms: r = {r} (95% CI {low} to {high})" in words
    assert (
        "Flückiger et al. 2018 pooled patient-level associations of alliance with end-of-treatment outcome: "
        "r = .278 [.256, .299]."
    ) in words
    within = next(
        e for e in rendered["trial"]["fitted"]["same_session"]["fit"]["effects"] if e["statistic"] == "r_within"
    )
    assert f"the repeated-measures correlation is r = {W.fmt(within['value'], 2)}" in words
    assert "so they are not set against that benchmark" in words
    assert "lies above" not in words and "confidence intervals overlap" not in words


def test_benchmark_position(benchmark):
    assert C.benchmark_position(0.31, 0.28, 0.34, benchmark) == ("above", True)
    assert C.benchmark_position(0.36, 0.31, 0.41, benchmark) == ("above", False)
    assert C.benchmark_position(0.22, 0.14, 0.30, benchmark) == ("below", True)
    assert C.benchmark_position(0.27, None, None, benchmark) == ("inside", None)
    assert C.benchmark_position(None, None, None, benchmark) == ("", None)
    assert C.benchmark_position(0.27, None, None, {**benchmark, "ci_low": 0.1, "ci_high": 0.2}) == ("above", None)


def test_the_shipped_benchmark_is_the_published_one(benchmark):
    # Flückiger, Del Re, Wampold & Horvath (2018): face-to-face r = .278 [.256, .299], d = .579
    assert (benchmark["r"], benchmark["ci_low"], benchmark["ci_high"]) == (0.278, 0.256, 0.299)
    assert W.benchmark_text(benchmark) == "r = .278 [.256, .299]"
    row = next(b for b in W.published_benchmarks(benchmark) if b["source"] == benchmark["source"])
    assert row["result"] == "face-to-face r = .278 [.256, .299], d = .579"


def test_a_configured_benchmark_moves_text_tables_checklist_and_caption(rendered, benchmark, tmp_path):
    other = {
        **benchmark,
        "r": 0.23,
        "ci_low": 0.2,
        "ci_high": 0.26,
        "citation": "Lab et al. 2030",
        "source": "Lab, A. (2030), J Test 1:1–2",
        "data": "12 studies",
        "setting": "",
    }
    trial = {**rendered["trial"], "config": {**rendered["trial"]["config"], "report": {"benchmark": other}}}
    run = render_run(tmp_path, trial, trial["fitted"], other)
    words = " ".join(re.sub(r"<[^>]+>", " ", run["html"]).split())
    supplement = " ".join(re.sub(r"<[^>]+>", " ", run["supplement"]).split())
    assert "Lab et al. 2030 pooled patient-level associations of alliance with end-of-treatment outcome:" in words
    assert "r = .230 [.200, .260]" in words
    assert "Lab, A. (2030), J Test 1:1–2 12 studies r = .230 [.200, .260], d = .473" in supplement
    for text in (words, supplement):
        assert not re.findall(
            r"r = \.278|\[\.256, \.299\]|d = \.579|Flückiger et al\. 2018|Flückiger, Del Re, Wampold", text
        )
    assert "beside the benchmark r = .230." in run["context"]["checklist_frame"].set_index("item").loc[9, "answer"]
    assert (
        "mark the meta-analytic benchmark of Lab et al. 2030, r = .230 [.200, .260]."
        in run["context"]["captions"]["alliance_forest"]
    )
    assert run["context"]["figure_alt"]["alliance_forest"].endswith("against the Lab et al. 2030 benchmark")


@pytest.mark.parametrize("document", ["html", "supplement"])
def test_report_is_self_contained(rendered, document):
    html = rendered[document]
    parsed = parse(html)
    assert any(
        m.get("http-equiv") == "Content-Security-Policy" and "default-src 'none'" in m.get("content", "")
        for m in parsed.meta
    )
    if document == "supplement":
        assert len(parsed.images) == len(rendered["figures"])
    assert all(img["src"].startswith("data:image/png;base64,") for img in parsed.images)
    assert all(img.get("alt") for img in parsed.images)
    assert all(u.startswith(("data:", "#")) for u in parsed.urls), [
        u[:60] for u in parsed.urls if not u.startswith(("data:", "#"))
    ]
    body = html.split("<body>")[1].split("Resolved configuration")[0]
    assert "http://" not in body and "https://" not in body
    assert "<script" not in html.lower()


def test_report_has_every_section_and_caption(rendered, benchmark):
    main = parse(rendered["html"]).headings
    for section in (
        "1. Findings in plain words",
        "2. The sample",
        "3. The primary models",
        "4. Alliance and end-of-treatment outcome against the published benchmark",
        "5. Within-patient effects",
        "7. Which comes first: alliance and symptom change over sessions",
        "8. Estimates beside the known truth",
    ):
        assert section in main
    headings = parse(rendered["supplement"]).headings
    for section in (
        "2. The sample",
        "3. Cleaning and exclusions",
        "4. Measures and scoring",
        "5. Models",
        "6. Results",
        "7. Effect sizes against published benchmarks",
        "8. Therapist effects",
        "9. How the main estimate moves across modelling choices",
        "10. Which comes first: alliance and symptom change over sessions",
        "11. Methods appendix: reviewer checklist",
        "12. Provenance",
    ):
        assert section in headings
    html = rendered["supplement"]
    for name in rendered["figures"]:
        caption = W.caption(
            name if not name.startswith("diagnostics_") else "diagnostics", params={"benchmark": benchmark}
        )
        assert caption and caption.replace("'", "&#39;").replace("&", "&amp;")[:60] in html.replace("&#x27;", "&#39;")
    forest = W.caption("alliance_forest", params={"benchmark": benchmark})
    assert "r between alliance and symptom improvement" in forest
    assert (
        forest.endswith("mark the meta-analytic benchmark of Flückiger et al. 2018, r = .278 [.256, .299].")
        and forest.replace("'", "&#39;") in html  # the HTML escapes the caption's apostrophes
    )
    assert "lme4 formula as specified: <code>symptoms ~ alliance_within_patient" in html
    three = rendered["trial"]["three_tables"]["fit"]
    specified, fitted = three["lme4_formula"], three["fit"].get("formula_lme4_fitted") or three["lme4_formula"]
    shown = (
        f"<br>as fitted: <code>{fitted}</code>"
        if fitted != specified
        else f"<code>{specified}</code> (fitted as specified)"
    )
    assert shown in html


def test_rendering_is_deterministic_apart_from_the_run_date(rendered):
    context = dict(rendered["context"])
    again = H.render_html(context)
    assert again == rendered["html"]
    context["run_date"] = "2030-12-31 23:59 UTC"
    later = H.render_html(context)
    assert later.replace("2030-12-31 23:59 UTC", "2026-01-01 00:00 UTC") == rendered["html"]


def test_missing_effects_stage_is_said_not_hidden(rendered):
    context = dict(rendered["context"])
    context.update(effects=[], overall_within=None)
    html = H.render_html(context, "supplement.html.j2")
    assert "The effect-size stage (<code>effects/alliance_effects.csv</code>) was not part of this run" in html


def test_missing_browser_gives_an_install_hint(monkeypatch):
    monkeypatch.setenv("ALLIANCE_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(P.BrowserNotFound, match="apt-get install chromium"):
        P.find_browser()
    monkeypatch.delenv("ALLIANCE_CHROMIUM")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(P, "CHROMIUM_MAC", "/nonexistent/Chrome")
    with pytest.raises(P.BrowserNotFound, match="ALLIANCE_CHROMIUM"):
        P.find_browser()


# --------------------------------------------------------------------------- the df method follows the engine


def _fit_json(name: str, engine: str, version: str, df_method: str) -> dict:
    """A hand-made fit.json with what the report reads about estimation and tests."""
    return {
        "spec": {"name": name, "random": [{"group": "patient"}], "fixed": ["x"], "outcome": "y"},
        "fit": {
            "engine": engine,
            "engine_version": version,
            "df_method": df_method,
            "method": "REML",
            "converged": True,
            "attempts": [{}],
            "optimizer": "x",
            "n_obs": 10,
        },
        "flags": [],
        # a contrast and a joint test with the df method of the engine's fixed effects (FitResult.contrast)
        "contrasts": [
            {"kind": "contrast", "name": "c", "df_method": ("t, " if "Satterthwaite" in df_method else "") + df_method},
            {
                "kind": "wald",
                "name": "w",
                "df_method": "F, " + df_method if "Satterthwaite" in df_method else "Wald chi-square (asymptotic)",
            },
        ],
    }


STATSMODELS_FIT = _fit_json("a", "statsmodels", "0.15.0", "Wald z (asymptotic)")
MIXEDLM_FIT = _fit_json("b", "mixedlm", "1.3.0", "Satterthwaite (mixedlm 1.3.0)")


def _item4(fits: list[dict], benchmark: dict) -> dict:
    checklist = T.reviewer_checklist(
        fits=fits,
        summary={"therapists": 12},
        config={},
        figures=[],
        effects=None,
        reliability={},
        benchmark=benchmark,
    )
    return checklist.set_index("item").loc[4].to_dict()


def test_df_sentence_differs_between_statsmodels_and_mixedlm():
    z, t = W.inference_summary([STATSMODELS_FIT]), W.inference_summary([MIXEDLM_FIT])
    assert z["fixed_tests"] != t["fixed_tests"] and z["findings"] != t["findings"]
    assert z["fixed_tests"] == "Fixed-effect tests are Wald z tests, without small-sample degrees of freedom."
    assert (
        t["fixed_tests"]
        == "Fixed-effect tests are t tests with Satterthwaite degrees of freedom (Satterthwaite (mixedlm 1.3.0))."
    )
    assert "Satterthwaite" not in z["findings"] and "Wald z tests (no small-sample" not in t["findings"]
    # the methods text names the engine and its version
    assert z["engines"].startswith("statsmodels 0.15.0: statsmodels MixedLM")
    assert t["engines"].startswith("mixedlm 1.3.0: the mixedlm package")
    # contrasts and joint tests have the fixed effects' df method (FitResult.contrast / wald_test)
    assert z["contrasts"] == "Contrasts and simple slopes are Wald z tests, and tests of several coefficients at " + (
        "once are Wald χ² tests (df = number of coefficients): the engine gives no Satterthwaite degrees of freedom."
    )
    assert t["contrasts"].startswith("Contrasts (such as the contextual effect) and simple slopes are t tests with ")
    assert "F tests with Satterthwaite denominator degrees of freedom" in t["contrasts"]
    assert z["findings"].endswith("; contrasts are Wald z tests.")
    assert t["findings"].endswith("; contrasts are t and F tests with Satterthwaite degrees of freedom.")
    mixed = W.inference_summary([STATSMODELS_FIT, MIXEDLM_FIT])["contrasts"]
    assert mixed.startswith("For b, contrasts (such as") and "; for a, contrasts and simple slopes are Wald z" in mixed
    # per model
    assert W.fixed_tests_text(MIXEDLM_FIT["fit"]).startswith("Fixed-effect tests are t tests with Satterthwaite")
    assert W.fixed_tests_text(STATSMODELS_FIT["fit"]).startswith(
        "Fixed-effect tests are Wald z tests (Wald z (asymptotic))"
    )
    # a run with both names the models of each
    both = W.inference_summary([STATSMODELS_FIT, MIXEDLM_FIT])
    assert "Satterthwaite (mixedlm 1.3.0)) for b, and Wald z tests" in both["fixed_tests"] and both[
        "fixed_tests"
    ].endswith("for a.")
    assert "(models a)" in both["engines"] and "(models b)" in both["engines"]
    # an engine that fell back to Wald z (df not computable) is reported as z, whatever the engine
    fallback = _fit_json("c", "mixedlm", "1.3.0", "Wald z (asymptotic)")
    assert W.inference_summary([fallback])["fixed_tests"] == z["fixed_tests"]


def test_checklist_small_sample_df_follows_the_engine(benchmark):
    z, t = _item4([STATSMODELS_FIT], benchmark), _item4([MIXEDLM_FIT], benchmark)
    both = _item4([STATSMODELS_FIT, MIXEDLM_FIT], benchmark)
    assert t["status"] == "reported" and "Small-sample df: yes, Satterthwaite df for b" in t["answer"]
    assert "Small-sample df: no" not in t["answer"] and "overstate" not in t["answer"]
    assert z["status"] == "partly" and "Small-sample df: no, for a" in z["answer"] and "12 therapists" in z["answer"]
    assert "Small-sample df: yes" not in z["answer"]
    assert (
        both["status"] == "partly" and "yes, Satterthwaite df for b" in both["answer"] and "no, for a" in both["answer"]
    )
    assert "simple slopes are Wald z tests" in z["answer"] and "Satterthwaite denominator" not in z["answer"]
    assert "F tests with Satterthwaite denominator degrees of freedom" in t["answer"] and "Wald z" not in t["answer"]


def _fixed_table_html(html: str, model: str) -> str:
    section = html.split(f'id="model-{model}"')[1]  # the model's section; its captions name its label
    return section.split("<caption>Fixed effects: ")[1].split("</table>")[0]


def test_tests_of_moderation_show_f_with_denominator_df_or_chi_square(rendered):
    """The main report's moderation tests name their test: F(q, denominator df) where the model stage
    wrote a denominator df (Satterthwaite), else χ²(q) (the rows as comparisons.heterogeneity_tests gives them)."""
    rows = [
        {"model": "m", "label": "M", "moderator": "therapy", "term": "all", "statistic": 1.25, "df": 4,
         "df_denominator": 119.36, "test": "F", "df_method": "F, Satterthwaite (mixedlm 1.3.0)", "p": 0.29,
         "source": "contrast¦m¦interaction: all x therapy¦"},
        {"model": "m", "label": "M", "moderator": "condition", "term": "all", "statistic": 0.47, "df": 2,
         "df_denominator": None, "test": "χ²", "df_method": "Wald chi-square (asymptotic)", "p": 0.79,
         "source": "contrast¦m¦interaction: all x condition¦"},
    ]  # fmt: skip
    html = H.render_html({**rendered["context"], "heterogeneity": rows})
    source = "contrast¦m¦interaction: all x therapy¦"
    f_test = f'F(<span class="num" data-source="{source}df">4</span>, <span class="num" data-source="{source}df_denominator">'
    assert f_test + "119.4</span>) =" in html
    assert 'χ²(<span class="num" data-source="contrast¦m¦interaction: all x condition¦df">2</span>) =' in html
    table = html.split("<caption>Tests of moderation</caption>")[1].split("</table>")[0]
    assert '<th class="text">Test</th><th>Statistic</th><th>df</th>' in table


def test_rendered_report_follows_the_statsmodels_run(rendered_statsmodels):
    rendered = rendered_statsmodels
    html = rendered["supplement"]
    assert "Wald z" in rendered["html"]
    assert "(1 | therapist) + (1 + alliance_within_patient || therapist:patient)" in html  # the slope as fitted
    # early_alliance's singular fit is refitted without random effects (alliance.models.singular): t, residual df
    assert (
        "Fixed-effect tests are t tests with Satterthwaite degrees of freedom for early_alliance and Wald z tests "
        "(no small-sample degrees of freedom) for same_session, three_level; contrasts are Wald z tests."
        in rendered["html"]
    )
    assert "Fixed-effect tests are Wald z tests (Wald z (asymptotic)), without small-sample degrees of freedom" in html
    assert "Satterthwaite" not in _fixed_table_html(html, "same_session")
    table = _fixed_table_html(html, "same_session")
    assert "<th>z</th>" in table and "<th>df</th>" not in table
    checklist = rendered["context"]["checklist_frame"].set_index("item")
    assert checklist.loc[4, "status"] == "partly" and "Small-sample df: no" in checklist.loc[4, "answer"]
    assert "Optimiser kept" in checklist.loc[3, "answer"]  # the best of several optimiser runs


def test_rendered_report_follows_the_mixedlm_run(rendered_mixedlm):
    html = rendered_mixedlm["supplement"]
    fits = {m: json.loads((rendered_mixedlm["results"] / "models" / m / "fit.json").read_text()) for m in NAMES}
    version = fits["same_session"]["fit"]["engine_version"]
    # the fixture's singular fits are simplified (alliance.models.singular): + the df of a term at a dropped level
    assert fits["same_session"]["fit"]["df_method"] == f"Satterthwaite (mixedlm {version})"
    assert all(f["fit"]["df_method"].startswith("Satterthwaite") for f in fits.values())
    assert f"Estimation: mixedlm {version}: the mixedlm package" in html
    assert (
        "Fixed-effect tests are t tests with Satterthwaite degrees of freedom; contrasts are t and F tests with "
        "Satterthwaite degrees of freedom." in rendered_mixedlm["html"]
    )
    assert (
        f"Fixed-effect tests are t tests with Satterthwaite degrees of freedom (Satterthwaite (mixedlm {version})): p values"
        in html
    )
    assert "Wald z tests (no small-sample" not in html and "statsmodels MixedLM" not in html
    # contrasts have the fixed effects' df method
    assert str(markupsafe.escape(W.contrast_tests_text(list(fits.values()))[0])) in html
    assert W.contrast_tests_text(list(fits.values()))[0].startswith("Contrasts (such as the contextual effect) and")
    assert f'<td class="text">t, Satterthwaite (mixedlm {version})</td>' in html  # the contrasts table's Test column
    for model in NAMES:
        table = _fixed_table_html(html, model)
        assert "<th>t</th><th>df</th>" in table
        assert f'data-source="fixed¦{model}¦Intercept¦df"' in table
    # the df shown are those of fixed_effects.csv (every quoted number is checked against its table)
    tables = tables_from_disk(rendered_mixedlm["results"], effects=True, truth=truth_file(rendered_mixedlm["trial"]))
    assert check_numbers(html, tables) > 100
    assert tables["fixed"]["three_level"]["df"].notna().all()
    comparison = tables["comparison"]
    assert set(comparison["test"]) == {"t"} and comparison["df"].notna().all()
    checklist = rendered_mixedlm["context"]["checklist_frame"].set_index("item")
    assert checklist.loc[4, "status"] == "reported" and "Small-sample df: yes" in checklist.loc[4, "answer"]
    assert f"mixedlm {version}" in checklist.loc[3, "answer"]


# --------------------------------------------------------------------------- a singular fit, simplified


def test_a_simplified_singular_fit_is_said_in_text_and_tables(rendered):
    """The fixture's three_level and early_alliance fits are singular (therapist variance 0) and refitted by
    the singular-fit policy (alliance.models.singular; its statistics: tests/models/test_singular_fits.py):
    the report says so beside each table, shows the fit as specified, and quotes the model stage's df."""
    main, supplement, results = rendered["html"], rendered["supplement"], rendered["results"]
    fixed = pd.read_csv(results / "models" / "three_level" / "fixed_effects.csv").set_index("term")
    how = "between therapist: 12 units - 1 fixed effect measured at that level - 1 = 10"
    assert fixed.loc["alliance_between_therapist", ["df", "df_method", "fit", "flags"]].tolist() == [
        10.0,
        how,
        "simplified",
        "simplified",
    ]
    early = json.loads((results / "models" / "early_alliance" / "fit.json").read_text())
    why = "as specified the fit was singular (therapist: variance of Intercept 0 &lt;= 1e-06 x residual variance)"
    # the main report: the table's caption and note (early_alliance is a primary model), and the caveats
    assert (
        "Session-3 alliance and end-of-treatment symptoms: fixed effects (REML; Satterthwaite t; simplified fit, "
        "the as-specified fit was singular)</caption>" in main
    )
    assert (
        f'<span class="flag">Singular fit simplified:</span> {why}; refitted without the therapist level (intercept '
        "variance 0; no random effects left: a linear model) (step 3). The table shows the simplified fit. The fit as "
        "specified is in the supplement." in main
    )
    # the caveats list each simplified model once (under its flag), then say what simplification means
    simplified = "Random effects simplified from the specification"
    listed = re.search(simplified + r"[^:]*: ([^<]*?)\.\n", main).group(1)
    assert "Alliance and next-session symptoms: within patients" in listed
    assert "2 singular fits refitted with a simpler random-effects structure\n(listed above)" in main
    assert "structure (Alliance and next-session symptoms" not in main  # not a second list of the same models
    assert early["fit"]["df_method"].startswith("Satterthwaite df of a model without random effects: the residual df")
    # the supplement: which fit the tables are, the therapist-level predictor's df, the fit as specified
    assert (
        "the tables below are the simplified fit's, Alliance (between therapists) tested on "
        f"{how} df.Rows used:" in supplement
    )
    assert "As specified, singular (flag boundary; not used for inference): Session-3 alliance" in supplement
    assert 'data-source="fixed¦three_level¦alliance_between_therapist¦df">10.0</span>' in _fixed_table_html(
        supplement, "three_level"
    )
    specified = {r["term"]: r for r in early["singular_fit"]["as_specified"]["fixed"]}
    assert f"<td>{W.fmt(specified['alliance_s3']['df'], 1)}</td>" in supplement  # the as-specified fit's df, 59.0
    assert "therapist 12; Patient (within therapist) 67" in supplement and "; no random effects." in supplement
