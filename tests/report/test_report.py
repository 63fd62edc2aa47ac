"""The narrative report: its tables, equations and checklist from real fits, and every number
quoted in its text tied back to the result tables it claims to come from."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.report import figures as F
from alliance.report import core as R
from alliance.engines.dispatch import fit
from alliance.intake.instruments import load_registry
from alliance.outputs import write_csv, write_json
from alliance.models.suite import complete_cases, fit_model, model_context, spec_from_config
from test_figures import effects_table, make_trial

# --------------------------------------------------------------------------- a reader's parser


class ReportParser(HTMLParser):
    """Collects the quoted numbers (span.num), images, links and headings of a report."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: list[dict] = []
        self.images: list[dict] = []
        self.urls: list[str] = []
        self.headings: list[str] = []
        self._span: dict | None = None
        self._heading: list[str] | None = None
        self.meta: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "span" and "num" in (attrs.get("class") or "").split():
            self._span = {"source": attrs["data-source"], "transform": attrs.get("data-transform"), "text": ""}
        if tag == "img":
            self.images.append(attrs)
        if tag == "meta":
            self.meta.append(attrs)
        for key in ("src", "href", "action", "data", "poster"):
            if attrs.get(key):
                self.urls.append(attrs[key])
        if tag in ("h2", "h3"):
            self._heading = []

    def handle_endtag(self, tag):
        if tag == "span" and self._span is not None:
            self.numbers.append(self._span)
            self._span = None
        if tag in ("h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None

    def handle_data(self, data):
        if self._span is not None:
            self._span["text"] += data
        if self._heading is not None:
            self._heading.append(data)


def parse(html: str) -> ReportParser:
    parser = ReportParser()
    parser.feed(html)
    return parser


def _contextual(fit: dict, column: str) -> float:
    """β(between) − β(within) and its CI, computed here from fit.json (independently of report.py)."""
    terms = fit["vcov"]["terms"]
    matrix = np.array(fit["vcov"]["matrix"], dtype=float)
    i, j = terms.index("alliance_between_patient"), terms.index("alliance_within_patient")
    estimates = {r["term"]: r["estimate"] for r in fit["fixed"]}
    est = estimates["alliance_between_patient"] - estimates["alliance_within_patient"]
    se = math.sqrt(matrix[i, i] + matrix[j, j] - 2 * matrix[i, j])
    return {"estimate": est, "ci_low": est - 1.959964 * se, "ci_high": est + 1.959964 * se}[column]


def source_value(source: str, tables: dict) -> float:
    """Look a data-source up in the run's tables: 'fixed¦model¦term¦column', 'table1¦therapy¦condition¦column', ..."""
    kind, *key = source.split("¦")
    if kind == "fixed":
        model, term, column = key
        frame = tables["fixed"][model]
        return frame.loc[frame["term"] == term, column].iloc[0]
    if kind == "variance":
        model, group, term, column = key
        frame = tables["variance"][model]
        return frame.loc[(frame["group"] == group) & (frame["term"] == term), column].iloc[0]
    if kind == "table1":
        therapy, condition, column = key
        frame = tables["table1"]
        return frame.loc[(frame["therapy"] == therapy) & (frame["condition"] == condition), column].iloc[0]
    if kind == "comparison":
        model, term, column = key
        frame = tables["comparison"]
        return frame.loc[(frame["model"] == model) & (frame["term"] == term), column].iloc[0]
    if kind == "effects":
        level, label, term, column = key
        frame = tables["effects"]
        return frame.loc[(frame["level"] == level) & (frame["label"] == label) & (frame["term"] == term), column].iloc[0]
    if kind == "summary":
        value = tables["summary"]
        for part in key:
            value = value[part]
        return value
    if kind == "fit":
        model, column = key
        return tables["fits"][model]["fit"][column]
    if kind == "contextual":
        model, column = key
        return _contextual(tables["fits"][model], column)
    if kind == "contrast":
        model, name, column = key
        frame = tables["contrasts"][model]
        return frame.loc[frame["name"] == name, column].iloc[0]
    if kind == "modeleffect":
        model, statistic, term, group, column = key
        frame = tables["model_effects"][model]
        hit = frame[(frame["statistic"] == statistic) & (frame["term"].astype(object).fillna("") == term) & (frame["group"].astype(object).fillna("") == group)]
        assert len(hit) == 1, (source, len(hit))
        return hit[column].iloc[0]
    raise AssertionError(f"unknown data-source {source!r}")


def check_numbers(html: str, tables: dict) -> int:
    """Every quoted number equals its source rounded to the decimals shown. Returns how many."""
    numbers = parse(html).numbers
    problems = []
    for n in numbers:
        expected = source_value(n["source"], tables)
        if expected is None or (isinstance(expected, float) and math.isnan(expected)):
            if n["text"].strip() != "–":
                problems.append((n, expected))
            continue
        expected = -float(expected) if n["transform"] == "neg" else float(expected)
        shown = R.parse_number(n["text"])
        if abs(shown - expected) > 0.5 * 10 ** -R.decimals(n["text"]) + 1e-9:
            problems.append((n, expected))
    assert not problems, problems[:10]
    return len(numbers)


def tables_from_disk(results: Path, effects: bool = False) -> dict:
    """The run's result tables, read as a reader would."""
    models = sorted(p.name for p in (results / "models").iterdir() if p.is_dir())
    return {
        "fixed": {m: pd.read_csv(results / "models" / m / "fixed_effects.csv") for m in models},
        "variance": {m: pd.read_csv(results / "models" / m / "variance_components.csv") for m in models},
        "fits": {m: json.loads((results / "models" / m / "fit.json").read_text()) for m in models},
        "contrasts": {m: pd.read_csv(results / "models" / m / "contrasts.csv") for m in models if (results / "models" / m / "contrasts.csv").exists()},
        "model_effects": {m: pd.read_csv(results / "models" / m / "effects.csv") for m in models if (results / "models" / m / "effects.csv").exists()},
        "table1": pd.read_csv(results / "report" / "table1.csv"),
        "comparison": pd.read_csv(results / "report" / "model_comparison.csv"),
        "summary": json.loads((results / "clean" / "summary.json").read_text()),
        "effects": pd.read_csv(results / "effects" / "alliance_effects.csv") if effects else None,
    }


# --------------------------------------------------------------------------- fixture: a rendered report


NAMES = ["same_session", "three_level", "early_alliance"]


def render_run(root: Path, trial: dict, fitted: dict) -> dict:
    """Write the fitted models' tables to CSV, read them back and render the report, as the workflow does."""
    results = root / "results"
    names = NAMES
    for model in names:
        tables = fitted[model]
        out = results / "models" / model
        out.mkdir(parents=True)
        for key, file in (("fixed", "fixed_effects"), ("variance", "variance_components"), ("contrasts", "contrasts"),
                          ("effects", "effects"), ("random_effects", "random_effects")):
            write_csv(tables[key], out / f"{file}.csv")
        write_json(tables["fit"], out / "fit.json")
    (results / "clean").mkdir()
    (results / "report").mkdir()
    (results / "effects").mkdir()
    (results / "clean" / "summary.json").write_text(json.dumps(trial["summary"], default=float))
    effects = effects_table()
    effects.to_csv(results / "effects" / "alliance_effects.csv", index=False)
    fits = [json.loads((results / "models" / m / "fit.json").read_text()) for m in sorted(names)]
    fixed = [pd.read_csv(results / "models" / m / "fixed_effects.csv") for m in sorted(names)]
    variance = [pd.read_csv(results / "models" / m / "variance_components.csv") for m in sorted(names)]
    write_csv(R.table1(trial["patients"]), results / "report" / "table1.csv")
    write_csv(R.model_comparison(fits, fixed), results / "report" / "model_comparison.csv")
    figures = {}
    for name, figure in {
        "trajectories_symptoms": F.trajectories(trial["analysis"], "symptoms", ylabel="Symptoms", seed=1),
        "flow_diagram": F.exclusion_flow(trial["flow"]),
        "alliance_forest": F.alliance_forest(effects),
        "therapist_effects": F.therapist_caterpillar(trial["random_effects"]),
        "diagnostics_three_level": F.model_diagnostics(trial["residuals"], trial["random_effects"]),
    }.items():
        figures[name] = root / f"{name}.png"
        F.save(figure, figures[name])
    context = R.report_context(
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
        effects=pd.read_csv(results / "effects" / "alliance_effects.csv"),
        patients=trial["patients"],
        model_order=names,
        primary_model="same_session",
        run_date="2026-01-01 00:00 UTC",
        pdf_tool="Chromium test",
    )
    return {"html": R.render_html(context), "context": context, "results": results, "trial": trial, "figures": figures}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    """A report rendered from a small trial (fitted with the engine's default, statsmodels)."""
    root = tmp_path_factory.mktemp("report")
    trial = make_trial(root / "raw")
    return render_run(root, trial, trial["fitted"])


@pytest.fixture(scope="module")
def rendered_mixedlm(rendered, tmp_path_factory) -> dict:
    """The same trial and models fitted with the mixedlm engine (Satterthwaite df)."""
    pytest.importorskip("mixedlm")
    trial = rendered["trial"]
    context = model_context(trial["config"])
    fitted = {name: fit_model(trial["models"][name], trial["analysis"], trial["patients"], context, engine="mixedlm")
              for name in NAMES}
    return render_run(tmp_path_factory.mktemp("report_mixedlm"), trial, fitted)


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
    row = comparison[(comparison["model"] == "three_level") & (comparison["term"] == "alliance_between_therapist")].iloc[0]
    assert row["estimate"] == pytest.approx(fixed.loc["alliance_between_therapist", "estimate"])
    assert row["n_obs"] == rendered["trial"]["three_tables"]["fit"]["fit"]["n_obs"]


def test_contextual_effect_matches_the_engine(rendered):
    same = rendered["trial"]["same"]["fit"]
    spec = spec_from_config(rendered["trial"]["models"]["same_session"])
    engine = fit(spec, complete_cases(spec, rendered["trial"]["analysis"]))
    expected = engine.contrast({"alliance_between_patient": 1, "alliance_within_patient": -1})
    got = R.contextual_effect(same)
    assert got["estimate"] == pytest.approx(expected["estimate"], rel=1e-6)
    assert got["se"] == pytest.approx(expected["se"], rel=1e-6)
    assert R.contextual_effect(rendered["trial"]["three_tables"]["fit"]) is None


def test_reliability_of_means_is_the_anova_estimate():
    # balanced groups: lambda = (MSB - MSW) / MSB (ICC(k))
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(200), 8)
    values = rng.normal(0, 1.0, 200)[groups] + rng.normal(0, 2.0, len(groups))
    got = R.mean_reliability(pd.Series(values), pd.Series(groups))
    frame = pd.DataFrame({"y": values, "g": groups})
    means = frame.groupby("g")["y"].mean()
    msb = 8 * ((means - values.mean()) ** 2).sum() / 199
    msw = ((frame["y"] - frame["g"].map(means)) ** 2).sum() / (len(values) - 200)
    assert got["mean"] == pytest.approx((msb - msw) / msb)
    assert got["min"] == pytest.approx(got["max"])
    assert got["mean"] == pytest.approx(1.0 / (1.0 + 4.0 / 8), abs=0.06)  # true tau2 1, sigma2 4, n 8


def test_variance_shares_are_iccs(rendered):
    variance = rendered["trial"]["three_tables"]["variance"]
    shares = R.variance_shares(variance)
    v = variance.set_index(["group", "term"])["variance"]
    total = v[("therapist", "Intercept")] + v[("Residual", "Residual")] + sum(
        v[k] for k in v.index if k[1] == "Intercept" and k[0] != "therapist"
    )
    assert shares["therapist"] == pytest.approx(v[("therapist", "Intercept")] / total)


# --------------------------------------------------------------------------- equations and text


def test_equations_per_level_of_the_same_session_model(rendered):
    fit = rendered["trial"]["same"]["fit"]
    blocks = R.model_equations(fit["spec"], rendered["trial"]["analysis"], fit["fit"]["n_groups"])
    assert [b["level"] for b in blocks] == ["Level 1 (session t)", "Level 2 (patient i)"]
    assert blocks[0]["lines"][0] == "symptomsₜᵢ = π₀ᵢ + π₁ᵢ·alliance_within_patientₜᵢ + β₃·session_cₜᵢ + eₜᵢ"
    assert blocks[1]["lines"] == [
        "π₀ᵢ = β₀ + β₂·alliance_between_patientᵢ + u₀ᵢ",
        "π₁ᵢ = β₁ + u₁ᵢ",
        "(u₀ᵢ, u₁ᵢ) ~ N(0, T[patient]), unstructured covariance (correlated)",
    ]


def test_equations_put_each_predictor_at_its_level(rendered):
    fit = rendered["trial"]["three_tables"]["fit"]
    blocks = R.model_equations(
        fit["spec"], rendered["trial"]["analysis"], fit["fit"]["n_groups"],
        roles=fit["config"]["roles"], fitted_formula=fit["fit"]["formula_lme4_fitted"],
    )
    text = {b["level"]: "\n".join(b["lines"]) for b in blocks}
    assert set(text) == {"Level 1 (session t)", "Level 2 (patient i within therapist)", "Level 3 (therapist j)"}
    assert "β₂·alliance_patient_within_therapistᵢⱼ" in text["Level 2 (patient i within therapist)"]
    assert "γ₀ⱼ = β₀ + β₃·alliance_between_therapistⱼ + v₀ⱼ" in text["Level 3 (therapist j)"]
    assert "independent: diagonal covariance (lme4 ||)" in text["Level 2 (patient i within therapist)"]
    assert "β₄·symptomsₜᵢⱼ + β₅·session_cₜᵢⱼ" in text["Level 1 (session t)"]
    # as specified (correlated), the same structure reads as lme4 would fit it
    as_specified = R.model_equations(fit["spec"], rendered["trial"]["analysis"], fit["fit"]["n_groups"])
    assert "unstructured covariance (correlated)" in "\n".join(as_specified[1]["lines"])


def test_equations_of_a_patient_level_model(rendered):
    fit = rendered["trial"]["fitted"]["early_alliance"]["fit"]
    blocks = R.model_equations(fit["spec"], rendered["trial"]["patients"], fit["fit"]["n_groups"],
                               roles=fit["config"]["roles"], unit="patient")
    assert [b["level"] for b in blocks] == ["Level 1 (patient i)", "Level 2 (therapist j)"]
    assert blocks[0]["lines"][0] == "symptoms_lastᵢⱼ = π₀ⱼ + β₁·symptoms_baseline_cᵢⱼ + β₂·alliance_s3ᵢⱼ + eᵢⱼ"
    assert blocks[1]["lines"] == ["π₀ⱼ = β₀ + u₀ⱼ", "u₀ⱼ ~ N(0, τ²[therapist])"]


def test_coefficient_labels_name_the_beta_of_every_row():
    terms = ["alliance_within_patient", "session_c", "therapy", "alliance_within_patient:therapy"]
    assert R.coefficient_label("Intercept", terms) == "β0"
    assert R.coefficient_label("session_c", terms) == "β2"
    assert R.coefficient_label("therapy[T.IPT]", terms) == "β3 (IPT)"
    assert R.coefficient_label("alliance_within_patient:therapy[T.PDT]", terms) == "β4 (PDT)"


def test_number_formatting_round_trips():
    assert R.fmt(-8.127, 2) == "−8.13" and R.parse_number("−8.13") == -8.13
    assert R.fmt(-0.0004, 2) == "−4.00e−04"
    assert R.fmt(-0.004, 2) == "−4.00e−03" and R.fmt(-0.014, 2) == "−0.01" and R.fmt(0.0, 2) == "0.00"
    assert R.fmt_r(0.2784) == ".278" and R.parse_number(".278") == 0.278
    assert R.fmt_r(-0.31, 2) == "−.31" and R.parse_number("−.31") == -0.31
    assert R.fmt(None) == "–" and R.fmt(float("nan")) == "–" and R.fmt(7086) == "7,086"
    assert R.fmt_p(0.0004) == "< .001" and R.fmt_p(0.0234) == ".023"
    assert R.decimals("−8.13") == 2 and R.decimals("600") == 0


def test_citations_carry_no_live_links():
    registry = load_registry()
    text = R.citation_text(registry["PHQ-9"].citation)
    assert "http" not in text and "doi:10.1046/j.1525-1497.2001.016009606.x" in text


def test_instrument_rows_state_prorating_rule_and_check_status(rendered):
    rows = {r["measure"]: r for r in R.instrument_rows(rendered["trial"]["config"], load_registry())}
    assert rows["alliance"]["role"] == "alliance"
    assert rows["phq9"]["role"] == "primary outcome for depression"
    assert rows["phq9"]["prorate_max_missing"] == 1 and rows["phq9"]["checked"] is False
    assert rows["phq9"]["unchecked_fields"] == "prorate_max_missing"
    assert rows["alliance"]["items"] == "12 × 1–5"
    assert "Hatcher" in rows["alliance"]["citation"]


def test_reviewer_checklist_is_filled_from_the_run(rendered):
    checklist = rendered["context"]["checklist_frame"]
    assert list(checklist["item"]) == list(range(1, 11))
    assert set(checklist["status"]) <= set(R.STATUS)
    answers = dict(zip(checklist["item"], checklist["answer"]))
    fit = rendered["trial"]["same"]["fit"]["fit"]
    assert f"same_session {fit['n_obs']}" in answers[6]
    assert "Estimation: REML (all 3 models)" in answers[3] and "Optimiser kept" in answers[3]
    assert "Wald z" in answers[4]
    assert "diagnostics" not in answers[8] or "three_level" in answers[8]
    assert "with the therapist level (three_level, early_alliance)" in answers[10]
    assert "Marginal and conditional R²" in answers[9]
    assert "r-equivalents (r from t) of the alliance coefficients, and per therapy" in answers[9]


# --------------------------------------------------------------------------- the rendered HTML


def test_every_quoted_number_ties_to_its_table(rendered):
    tables = tables_from_disk(rendered["results"], effects=True)
    n = check_numbers(rendered["html"], tables)
    assert n > 100
    sources = {x["source"].split("¦")[0] for x in parse(rendered["html"]).numbers}
    assert {"fixed", "variance", "table1", "summary", "effects", "comparison", "contrast", "fit", "modeleffect"} <= sources


def test_findings_quote_the_primary_estimate_in_words(rendered):
    html = rendered["html"]
    fixed = rendered["trial"]["same"]["fixed"].set_index("term")
    within = R.fmt(fixed.loc["alliance_within_patient", "estimate"], 2)
    findings = html.split('id="findings"')[1].split('id="sample"')[0]
    text = re.sub(r"<[^>]+>", "", findings)
    assert f"symptoms differed by {within} points" in " ".join(text.split())
    overall = effects_table().iloc[0]
    assert f"r = {R.fmt_r(-overall['r'], 2)}" in " ".join(text.split())
    words = " ".join(text.split())
    assert ("the point estimate lies above the confidence interval of the meta-analytic benchmark r = .278 [.256, .299] "
            "(Flückiger et al. 2018), and the two confidence intervals overlap.") in words


def test_benchmark_position():
    assert R.benchmark_position(0.31, 0.28, 0.34) == ("above", True)
    assert R.benchmark_position(0.36, 0.31, 0.41) == ("above", False)
    assert R.benchmark_position(0.22, 0.14, 0.30) == ("below", True)
    assert R.benchmark_position(0.27, None, None) == ("inside", None)
    assert R.benchmark_position(None) == ("", None)


def test_report_is_self_contained(rendered):
    html = rendered["html"]
    parsed = parse(html)
    assert any(m.get("http-equiv") == "Content-Security-Policy" and "default-src 'none'" in m.get("content", "") for m in parsed.meta)
    assert len(parsed.images) == len(rendered["figures"])
    assert all(img["src"].startswith("data:image/png;base64,") for img in parsed.images)
    assert all(img.get("alt") for img in parsed.images)
    assert all(u.startswith(("data:", "#")) for u in parsed.urls), [u[:60] for u in parsed.urls if not u.startswith(("data:", "#"))]
    body = html.split("<body>")[1].split("Resolved configuration")[0]
    assert "http://" not in body and "https://" not in body
    assert "<script" not in html.lower()


def test_report_has_every_section_and_caption(rendered):
    headings = parse(rendered["html"]).headings
    for section in ("1. Findings in plain words", "2. The sample", "3. Cleaning and exclusions", "4. Measures and scoring",
                    "5. Models", "6. Results", "7. Effect sizes against published benchmarks", "8. Therapist effects",
                    "9. How the main estimate moves across modelling choices", "10. Methods appendix: reviewer checklist",
                    "11. Provenance"):
        assert section in headings
    html = rendered["html"]
    for name in rendered["figures"]:
        caption = R.caption(name if not name.startswith("diagnostics_") else "diagnostics")
        assert caption and caption.replace("'", "&#39;").replace("&", "&amp;")[:60] in html.replace("&#x27;", "&#39;")
    assert "r between alliance and symptom improvement" in R.caption("alliance_forest")
    assert "lme4 formula as specified: <code>symptoms ~ alliance_within_patient" in html
    assert "(1 | therapist) + (1 + alliance_within_patient || therapist:patient)" in html


def test_rendering_is_deterministic_apart_from_the_run_date(rendered):
    context = dict(rendered["context"])
    again = R.render_html(context)
    assert again == rendered["html"]
    context["run_date"] = "2030-12-31 23:59 UTC"
    later = R.render_html(context)
    assert later.replace("2030-12-31 23:59 UTC", "2026-01-01 00:00 UTC") == rendered["html"]


def test_missing_effects_stage_is_said_not_hidden(rendered):
    context = dict(rendered["context"])
    context.update(effects=[], overall_within=None)
    html = R.render_html(context)
    assert "The effect-size stage (<code>effects/alliance_effects.csv</code>) was not part of this run" in html


def test_missing_browser_gives_an_install_hint(monkeypatch):
    monkeypatch.setenv("ALLIANCE_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(R.BrowserNotFound, match="apt-get install chromium"):
        R.find_browser()
    monkeypatch.delenv("ALLIANCE_CHROMIUM")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(R, "CHROMIUM_MAC", "/nonexistent/Chrome")
    with pytest.raises(R.BrowserNotFound, match="ALLIANCE_CHROMIUM"):
        R.find_browser()


# --------------------------------------------------------------------------- the df method follows the engine


def _fit_json(name: str, engine: str, version: str, df_method: str) -> dict:
    """A hand-made fit.json with what the report reads about estimation and tests."""
    return {"spec": {"name": name, "random": [{"group": "patient"}], "fixed": ["x"], "outcome": "y"},
            "fit": {"engine": engine, "engine_version": version, "df_method": df_method, "method": "REML",
                    "converged": True, "attempts": [{}], "optimizer": "x", "n_obs": 10},
            "flags": []}


STATSMODELS_FIT = _fit_json("a", "statsmodels", "0.15.0", "Wald z (asymptotic)")
MIXEDLM_FIT = _fit_json("b", "mixedlm", "1.3.0", "Satterthwaite (mixedlm 1.3.0)")


def _item4(fits: list[dict]) -> dict:
    checklist = R.reviewer_checklist(
        fits=fits, variance=[pd.DataFrame(columns=["group", "term", "variance"]) for _ in fits],
        summary={"therapists": 12}, config={}, figures=[], effects=None, reliability={},
    )
    return checklist.set_index("item").loc[4].to_dict()


def test_df_sentence_differs_between_statsmodels_and_mixedlm():
    z, t = R.inference_summary([STATSMODELS_FIT]), R.inference_summary([MIXEDLM_FIT])
    assert z["fixed_tests"] != t["fixed_tests"] and z["findings"] != t["findings"]
    assert z["fixed_tests"] == "Fixed-effect tests are Wald z tests, without small-sample degrees of freedom."
    assert t["fixed_tests"] == "Fixed-effect tests are t tests with Satterthwaite degrees of freedom (Satterthwaite (mixedlm 1.3.0))."
    assert "Satterthwaite" not in z["findings"] and "Wald z tests (no small-sample" not in t["findings"]
    # the methods text names the engine and its version
    assert z["engines"].startswith("statsmodels 0.15.0: statsmodels MixedLM")
    assert t["engines"].startswith("mixedlm 1.3.0: the mixedlm package")
    # contrasts and joint tests are asymptotic with every engine (FitResult.contrast / wald_test)
    assert z["contrasts"] == t["contrasts"] and "Wald z" in t["contrasts"] and "χ²" in t["contrasts"]
    # per model
    assert R.fixed_tests_text(MIXEDLM_FIT["fit"]).startswith("Fixed-effect tests are t tests with Satterthwaite")
    assert R.fixed_tests_text(STATSMODELS_FIT["fit"]).startswith("Fixed-effect tests are Wald z tests (Wald z (asymptotic))")
    # a run with both names the models of each
    both = R.inference_summary([STATSMODELS_FIT, MIXEDLM_FIT])
    assert "Satterthwaite (mixedlm 1.3.0)) for b, and Wald z tests" in both["fixed_tests"] and both["fixed_tests"].endswith("for a.")
    assert "(models a)" in both["engines"] and "(models b)" in both["engines"]
    # an engine that fell back to Wald z (df not computable) is reported as z, whatever the engine
    fallback = _fit_json("c", "mixedlm", "1.3.0", "Wald z (asymptotic)")
    assert R.inference_summary([fallback])["fixed_tests"] == z["fixed_tests"]


def test_checklist_small_sample_df_follows_the_engine():
    z, t, both = _item4([STATSMODELS_FIT]), _item4([MIXEDLM_FIT]), _item4([STATSMODELS_FIT, MIXEDLM_FIT])
    assert t["status"] == "reported" and "Small-sample df: yes, Satterthwaite df for b" in t["answer"]
    assert "Small-sample df: no" not in t["answer"] and "overstate" not in t["answer"]
    assert z["status"] == "partly" and "Small-sample df: no, for a" in z["answer"] and "12 therapists" in z["answer"]
    assert "Small-sample df: yes" not in z["answer"]
    assert both["status"] == "partly" and "yes, Satterthwaite df for b" in both["answer"] and "no, for a" in both["answer"]
    for answer in (z, t):
        assert "Wald z / χ² with every engine" in answer["answer"]


def _fixed_table_html(html: str, model: str) -> str:
    return html.split(f"<caption>Fixed effects: {model}</caption>")[1].split("</table>")[0]


def test_rendered_report_follows_the_statsmodels_run(rendered):
    html = rendered["html"]
    assert "Fixed-effect tests are Wald z tests (no small-sample degrees of freedom); contrasts are Wald z tests." in html
    assert "Fixed-effect tests are Wald z tests (Wald z (asymptotic)), without small-sample degrees of freedom" in html
    assert "Satterthwaite" not in html.split('id="appendix"')[0]
    table = _fixed_table_html(html, "same_session")
    assert "<th>z</th>" in table and "<th>df</th>" not in table
    checklist = rendered["context"]["checklist_frame"].set_index("item")
    assert checklist.loc[4, "status"] == "partly" and "Small-sample df: no" in checklist.loc[4, "answer"]


def test_rendered_report_follows_the_mixedlm_run(rendered_mixedlm):
    html = rendered_mixedlm["html"]
    fits = {m: json.loads((rendered_mixedlm["results"] / "models" / m / "fit.json").read_text()) for m in NAMES}
    version = fits["same_session"]["fit"]["engine_version"]
    assert all(f["fit"]["df_method"] == f"Satterthwaite (mixedlm {version})" for f in fits.values())
    assert f"Estimation: mixedlm {version}: the mixedlm package" in html
    assert "Fixed-effect tests are t tests with Satterthwaite degrees of freedom; contrasts are Wald z tests." in html
    assert f"Fixed-effect tests are t tests with Satterthwaite degrees of freedom (Satterthwaite (mixedlm {version})): p values" in html
    assert "Wald z tests (no small-sample" not in html and "statsmodels MixedLM" not in html
    assert R.CONTRAST_TESTS in html  # contrasts stay z for every engine
    for model in NAMES:
        table = _fixed_table_html(html, model)
        assert "<th>t</th><th>df</th>" in table
        assert f'data-source="fixed¦{model}¦Intercept¦df"' in table
    # the df shown are those of fixed_effects.csv (every quoted number is checked against its table)
    tables = tables_from_disk(rendered_mixedlm["results"], effects=True)
    assert check_numbers(html, tables) > 100
    assert tables["fixed"]["three_level"]["df"].notna().all()
    comparison = tables["comparison"]
    assert set(comparison["test"]) == {"t"} and comparison["df"].notna().all()
    checklist = rendered_mixedlm["context"]["checklist_frame"].set_index("item")
    assert checklist.loc[4, "status"] == "reported" and "Small-sample df: yes" in checklist.loc[4, "answer"]
    assert f"mixedlm {version}" in checklist.loc[3, "answer"]
