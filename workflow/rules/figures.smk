# Figures: one rule per figure, PNG and SVG in one house style (alliance.report.figures), each
# registered for Snakemake's report with the caption workflow/report/<figure>.rst (the same
# text the narrative report prints under the figure).
#
# The forest plot, the therapist caterpillar plot and the model diagnostics read files of the
# model and effects stages (random_effects.csv, residuals.parquet, effects/alliance_effects.csv).
# They join the report only when some rule declares those files (report_inputs in common.smk).

FIGURES = f"{RESULTS}/figures"
# the first model with a therapist random intercept: its therapist effects are plotted
THERAPIST_MODEL = next(
    (
        n
        for n, m in MODELS.items()
        if any(r["group"] == "therapist" for r in m["random"])
    ),
    None,
)


rule plot_trajectories_symptoms:
    """Symptom trajectories by therapy type: patients faint, mean per session with 95% CI, model-implied mean."""
    input:
        analysis=rules.clean_data.output.analysis,
        fixed=primary_model_fixed,
    output:
        png=report(
            f"{FIGURES}/trajectories_symptoms.png",
            caption="../report/trajectories_symptoms.rst",
            category="Figures",
            subcategory="Descriptives",
        ),
        svg=f"{FIGURES}/trajectories_symptoms.svg",
    log:
        f"{LOGS}/plot_trajectories_symptoms.log",
    conda:
        "../../environment.yml"
    threads: 1
    params:
        measure="symptoms",
        seed=config["run"]["seed"],
        max_patients=200,
    script:
        "../scripts/plot_trajectories.py"


rule plot_trajectories_alliance:
    """Alliance trajectories by therapy type: patients faint, mean per session with 95% CI."""
    input:
        analysis=rules.clean_data.output.analysis,
    output:
        png=report(
            f"{FIGURES}/trajectories_alliance.png",
            caption="../report/trajectories_alliance.rst",
            category="Figures",
            subcategory="Descriptives",
        ),
        svg=f"{FIGURES}/trajectories_alliance.svg",
    log:
        f"{LOGS}/plot_trajectories_alliance.log",
    conda:
        "../../environment.yml"
    threads: 1
    params:
        measure="alliance",
        seed=config["run"]["seed"],
        max_patients=200,
    script:
        "../scripts/plot_trajectories.py"


rule plot_within_between:
    """Within-patient and between-patient alliance-symptom association."""
    input:
        analysis=rules.clean_data.output.analysis,
        fixed=primary_model_fixed,
    output:
        png=report(
            f"{FIGURES}/within_between.png",
            caption="../report/within_between.rst",
            category="Figures",
            subcategory="Association",
        ),
        svg=f"{FIGURES}/within_between.svg",
    log:
        f"{LOGS}/plot_within_between.log",
    conda:
        "../../environment.yml"
    threads: 1
    params:
        seed=config["run"]["seed"],
    script:
        "../scripts/plot_within_between.py"


rule plot_missing_data:
    """Missing data by session and arm."""
    input:
        analysis=rules.clean_data.output.analysis,
        patients=rules.clean_data.output.patients,
    output:
        png=report(
            f"{FIGURES}/missing_data.png",
            caption="../report/missing_data.rst",
            category="Figures",
            subcategory="Descriptives",
        ),
        svg=f"{FIGURES}/missing_data.svg",
    log:
        f"{LOGS}/plot_missing_data.log",
    conda:
        "../../environment.yml"
    threads: 1
    params:
        arm=["therapy", "condition"],
    script:
        "../scripts/plot_missing_data.py"


rule plot_flow_diagram:
    """CONSORT-style exclusion flow drawn from exclusion_flow.csv."""
    input:
        flow=rules.clean_data.output.flow,
    output:
        png=report(
            f"{FIGURES}/flow_diagram.png",
            caption="../report/flow_diagram.rst",
            category="Figures",
            subcategory="Cleaning",
        ),
        svg=f"{FIGURES}/flow_diagram.svg",
    log:
        f"{LOGS}/plot_flow_diagram.log",
    conda:
        "../../environment.yml"
    threads: 1
    params:
        source="exclusion_flow.csv",
    script:
        "../scripts/plot_flow_diagram.py"


rule plot_alliance_forest:
    """Forest plot of the alliance effect as r (with symptom improvement) against the benchmark."""
    input:
        effects=f"{RESULTS}/effects/alliance_effects.csv",
    output:
        png=report(
            f"{FIGURES}/alliance_forest.png",
            caption="../report/alliance_forest.rst",
            category="Figures",
            subcategory="Effect sizes",
        ),
        svg=f"{FIGURES}/alliance_forest.svg",
    log:
        f"{LOGS}/plot_alliance_forest.log",
    conda:
        "../../environment.yml"
    threads: 1
    params:
        benchmark={"r": 0.278, "ci_low": 0.256, "ci_high": 0.299},
    script:
        "../scripts/plot_alliance_forest.py"


rule plot_therapist_effects:
    """Caterpillar plot of the therapist random intercepts with 95% intervals."""
    input:
        random_effects=model_file("random_effects.csv", THERAPIST_MODEL),
    output:
        png=report(
            f"{FIGURES}/therapist_effects.png",
            caption="../report/therapist_effects.rst",
            category="Figures",
            subcategory="Therapist effects",
        ),
        svg=f"{FIGURES}/therapist_effects.svg",
    log:
        f"{LOGS}/plot_therapist_effects.log",
    conda:
        "../../environment.yml"
    threads: 1
    params:
        model=THERAPIST_MODEL,
        label=MODELS.get(THERAPIST_MODEL, {}).get("label", THERAPIST_MODEL),
        group="therapist",
    script:
        "../scripts/plot_therapist_effects.py"


rule plot_diagnostics:
    """Residuals against fitted values and QQ plots of residuals and random effects, per model."""
    input:
        residuals=f"{RESULTS}/models/{{model}}/residuals.parquet",
        random_effects=model_file("random_effects.csv"),
    output:
        png=report(
            f"{FIGURES}/diagnostics_{{model}}.png",
            caption="../report/diagnostics.rst",
            category="Figures",
            subcategory="Diagnostics",
            labels={"model": "{model}"},
        ),
        svg=f"{FIGURES}/diagnostics_{{model}}.svg",
    log:
        f"{LOGS}/plot_diagnostics_{{model}}.log",
    conda:
        "../../environment.yml"
    threads: 1
    params:
        seed=config["run"]["seed"],
        label=lambda wildcards: MODELS[wildcards.model].get("label", wildcards.model),
    script:
        "../scripts/plot_diagnostics.py"
