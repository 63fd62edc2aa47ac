# The narrative report: tables computed from the run's files, then one self-contained HTML
# file, and the same document as PDF printed by headless Chromium (ALLIANCE_CHROMIUM may name
# the executable). Without a browser the HTML is still made and `rule all` skips the PDF,
# saying how to install one, so `make run` works on a machine with only Python.

REPORT_PDF = f"{REPORTS}/report.pdf"
# the supplement: every model table, the diagnostics, the reviewer checklist (the main report is REPORT_HTML)
SUPPLEMENT_HTML = f"{REPORTS}/supplement.html"
SUPPLEMENT_PDF = f"{REPORTS}/supplement.pdf"
# APA-style tables of Table 1 and the primary models for a manuscript, as Word and LaTeX
MANUSCRIPT_TABLES = {
    f"{name}_{kind}": f"{REPORTS}/tables/{name}.{kind}"
    for name in ("table1", "primary_models")
    for kind in ("docx", "tex")
}
REPORT_TABLES = f"{RESULTS}/report"
# the template is an input, so that editing it renders the report again
REPORT_TEMPLATE = str(WORKFLOW_DIR / "report" / "report.html.j2")


rule report_tables:
    """Table 1 of the sample and the alliance coefficients of every model, as CSV."""
    input:
        patients=rules.clean_data.output.patients,
        fixed=model_results("fixed_effects.csv"),
        fits=model_results("fit.json"),
    output:
        **MANUSCRIPT_TABLES,
        table1=report(
            f"{REPORT_TABLES}/table1.csv",
            caption="../report/table1.rst",
            category="Report tables",
        ),
        comparison=report(
            f"{REPORT_TABLES}/model_comparison.csv",
            caption="../report/model_comparison.rst",
            category="Report tables",
        ),
    log:
        f"{LOGS}/report_tables.log",
    benchmark:
        f"{BENCHMARKS}/report_tables.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # at 1.17M session rows (benchmarks/scale/): 332 MB; 7 s
    resources:
        mem_mb=500,
        runtime=5,
    params:
        models=sorted(MODELS),
        primary_model=PRIMARY_MODEL,
        benchmark=config["report"]["benchmark"],
        term_labels=config["report"].get("term_labels", {}),
    script:
        "../scripts/render_tables.py"


# what the report reads: the run's tables and figures (the keys are the names render_report.py uses)
REPORT_INPUTS = {
    "template": REPORT_TEMPLATE,
    "template_parts": [
        str(WORKFLOW_DIR / "report" / "macros.html.j2"),
        str(WORKFLOW_DIR / "report" / "style.html.j2"),
        str(WORKFLOW_DIR / "report" / "supplement.html.j2"),
        str(WORKFLOW_DIR / "report" / "lagged_dynamics.html.j2"),
    ],
    "summary": rules.clean_data.output.summary,
    "flow": rules.clean_data.output.flow,
    "validation": rules.clean_data.output.validation,
    "reliability": rules.clean_data.output.reliability,
    "dictionary": rules.clean_data.output.dictionary,
    "analysis": rules.clean_data.output.analysis,
    "patients": rules.clean_data.output.patients,
    "table1": rules.report_tables.output.table1,
    "comparison": rules.report_tables.output.comparison,
    "fixed": model_results("fixed_effects.csv"),
    "variance": model_results("variance_components.csv"),
    "fits": model_results("fit.json"),
    "fig_flow_diagram": rules.plot_flow_diagram.output.png,
    "fig_missing_data": rules.plot_missing_data.output.png,
    "fig_trajectories_symptoms": rules.plot_trajectories_symptoms.output.png,
    "fig_trajectories_alliance": rules.plot_trajectories_alliance.output.png,
    "fig_within_between": rules.plot_within_between.output.png,
    "effects": rules.summarise_effects.output.alliance_effects,
    "fig_alliance_forest": rules.plot_alliance_forest.output.png,
    "effect_sizes": rules.summarise_effects.output.effect_sizes,
    "fig_lagged_dynamics": rules.plot_lagged_dynamics.output.png,
    # the RI-CLPMs (rules/dynamics.smk): render_report.py reads each fit.json and the tables beside it
    "riclpm_fits": riclpm_results("fit.json"),
    "riclpm_tables": [
        f
        for kind in ("parameters", "fit_indices", "long_run", "constraint_test")
        for f in riclpm_results(f"{kind}.csv")
    ],
}
# the analyses reviewers ask for (multiplicity, therapist influence, sensitivity: REVIEWER_TABLES of
# rules/models.smk), shown in the supplement
REPORT_INPUTS["reviewer_tables"] = REVIEWER_TABLES
# a simulated dataset's known truth (TRUTH_PATH, rules/figures.smk): the lagged estimates are shown beside it
if TRUTH_PATH:
    REPORT_INPUTS["truth"] = TRUTH_PATH
if THERAPIST_MODEL:
    REPORT_INPUTS["fig_therapist_effects"] = rules.plot_therapist_effects.output.png
# leave-one-therapist-out (rules/figures.smk), in the supplement
if INFLUENCE_FIGURE_MODELS:
    REPORT_INPUTS["fig_therapist_influence"] = rules.plot_therapist_influence.output.png
for _model in sorted(MODELS):
    REPORT_INPUTS[f"fig_diagnostics_{_model}"] = (
        f"{RESULTS}/figures/diagnostics_{_model}.png"
    )


rule render_report:
    """The narrative report as one self-contained HTML file and the same as PDF."""
    input:
        **REPORT_INPUTS,
    output:
        html=REPORT_HTML,
        supplement=SUPPLEMENT_HTML,
        checklist=report(
            f"{REPORT_TABLES}/reviewer_checklist.csv",
            caption="../report/reviewer_checklist.rst",
            category="Report tables",
        ),
    log:
        f"{LOGS}/render_report.log",
    benchmark:
        f"{BENCHMARKS}/render_report.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # at 1.17M session rows (benchmarks/scale/): 602 MB, 0.59 GB sampled; 15 s
    resources:
        mem_mb=800,
        runtime=5,
    params:
        title=config["run"]["title"],
        config=config,
        primary_model=PRIMARY_MODEL,
        model_order=list(MODELS),
        riclpm_models=sorted(RICLPM_MODELS),
        instruments=config.get("instruments", {}),
    script:
        "../scripts/render_report.py"


rule render_report_pdf:
    """The HTML report and its supplement printed to PDF by headless Chromium: the same documents a reader sees."""
    input:
        html=REPORT_HTML,
        supplement=SUPPLEMENT_HTML,
    output:
        pdf=report(REPORT_PDF, caption="../report/report_pdf.rst", category="Report"),
        supplement=SUPPLEMENT_PDF,
    log:
        f"{LOGS}/render_report_pdf.log",
    benchmark:
        f"{BENCHMARKS}/render_report_pdf.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # at 1.17M session rows (benchmarks/scale/): 1346 MB with Chromium's processes; 8 s
    resources:
        mem_mb=1700,
        runtime=5,
    params:
        browser=PDF_BROWSER,
    script:
        "../scripts/render_report_pdf.py"
