# Figures: one rule per figure, PNG and SVG in one house style (alliance.report.figures, alliance.report.diagnostic_figures), each
# registered for Snakemake's report with the caption workflow/report/<figure>.rst (the same
# text the narrative report prints under the figure).
#
# The forest plot, the therapist caterpillar plot and the model diagnostics read files of the
# model and effects stages (random_effects.csv, residuals.parquet, effects/alliance_effects.csv).

from alliance.report.truth import truth_path  # noqa: E402

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
    benchmark:
        f"{BENCHMARKS}/plot_trajectories_symptoms.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # at 1.17M session rows (benchmarks/scale/): 413 MB, 0.44 GB sampled; 15 s
    resources:
        mem_mb=600,
        runtime=5,
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
    benchmark:
        f"{BENCHMARKS}/plot_trajectories_alliance.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # at 1.17M session rows (benchmarks/scale/): 383 MB, 0.44 GB sampled; 11 s
    resources:
        mem_mb=600,
        runtime=5,
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
    benchmark:
        f"{BENCHMARKS}/plot_within_between.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # at 1.17M session rows (benchmarks/scale/): 474 MB, 0.46 GB sampled; 13 s
    resources:
        mem_mb=600,
        runtime=5,
    params:
        seed=config["run"]["seed"],
    script:
        "../scripts/plot_within_between.py"


rule plot_missing_data:
    """Missing data: patients still in treatment by session and therapy type, missed scores by arm."""
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
    benchmark:
        f"{BENCHMARKS}/plot_missing_data.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # at 1.17M session rows (benchmarks/scale/): 579 MB, 0.60 GB sampled; 28 s
    resources:
        mem_mb=800,
        runtime=5,
    params:
        by="therapy",  # one dropout line per therapy type; the missed scores per therapy x condition arm
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
    benchmark:
        f"{BENCHMARKS}/plot_flow_diagram.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # at 1.17M session rows (benchmarks/scale/): 222 MB; 12 s
    resources:
        mem_mb=300,
        runtime=5,
    params:
        source="exclusion_flow.csv",
    script:
        "../scripts/plot_flow_diagram.py"


rule plot_alliance_forest:
    """Forest plot of the alliance effect as r (with symptom improvement); the benchmark's band only behind its design."""
    input:
        effects=f"{RESULTS}/effects/alliance_effects.csv",
        # the patient-level models' r-equivalents (fit.json effects): the panel of the benchmark's design
        fits=model_results("fit.json"),
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
    benchmark:
        f"{BENCHMARKS}/plot_alliance_forest.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # at 1.17M session rows (benchmarks/scale/): 234 MB; 11 s
    resources:
        mem_mb=300,
        runtime=5,
    params:
        benchmark=config["report"]["benchmark"],
        models=list(MODELS.values()),
        model_order=list(MODELS),
    script:
        "../scripts/plot_alliance_forest.py"


rule plot_therapist_effects:
    """Caterpillar plot of the therapist random intercepts with 95% intervals."""
    input:
        # requested (by the report) only when a model has a therapist random intercept
        random_effects=f"{RESULTS}/models/{THERAPIST_MODEL}/random_effects.csv",
        # a therapist variance estimated at 0 is said in words instead of an empty plot
        variance=f"{RESULTS}/models/{THERAPIST_MODEL}/variance_components.csv",
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
    benchmark:
        f"{BENCHMARKS}/plot_therapist_effects.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # at 1.17M session rows (benchmarks/scale/): 224 MB on the demo, 165 MB; 46 s
    resources:
        mem_mb=300,
        runtime=5,
    params:
        model=THERAPIST_MODEL,
        label=MODELS.get(THERAPIST_MODEL, {}).get("label", THERAPIST_MODEL),
        group="therapist",
    script:
        "../scripts/plot_therapist_effects.py"


# the leave-one-therapist-out tables (INFLUENCE_MODELS, rules/models.smk): the primary model first,
# then the others in config order
INFLUENCE_FIGURE_MODELS = sorted(
    INFLUENCE_MODELS, key=lambda n: (n != PRIMARY_MODEL, list(MODELS).index(n))
)


rule plot_therapist_influence:
    """Each focal estimate with each therapist left out, against the full-data estimate and its 95% CI."""
    input:
        # requested (by the report) only when INFLUENCE_MODELS is not empty
        influence=[
            f"{RESULTS}/models/{m}/therapist_influence.csv"
            for m in INFLUENCE_FIGURE_MODELS
        ],
    output:
        png=report(
            f"{FIGURES}/therapist_influence.png",
            caption="../report/therapist_influence.rst",
            category="Figures",
            subcategory="Therapist effects",
        ),
        svg=f"{FIGURES}/therapist_influence.svg",
    log:
        f"{LOGS}/plot_therapist_influence.log",
    benchmark:
        f"{BENCHMARKS}/plot_therapist_influence.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # reads a few small tables (one row per therapist and focal term): under 1 s on the demo
    resources:
        mem_mb=300,
        runtime=5,
    params:
        model_labels={n: MODELS[n].get("label", n) for n in INFLUENCE_FIGURE_MODELS},
        term_labels=config["report"].get("term_labels", {}),
    script:
        "../scripts/plot_therapist_influence.py"


rule plot_diagnostics:
    """Residuals against fitted values and QQ plots of residuals and random effects, per model."""
    input:
        residuals=f"{RESULTS}/models/{{model}}/residuals.parquet",
        random_effects=f"{RESULTS}/models/{{model}}/random_effects.csv",
        # a variance estimated at 0 is said in words instead of an empty QQ panel
        variance=f"{RESULTS}/models/{{model}}/variance_components.csv",
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
    benchmark:
        f"{BENCHMARKS}/plot_diagnostics_{{model}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # at 1.17M session rows (benchmarks/scale/): 459 MB, 0.49 GB sampled; 72 s
    resources:
        mem_mb=700,
        runtime=5,
    params:
        seed=config["run"]["seed"],
        label=lambda wildcards: MODELS[wildcards.model].get("label", wildcards.model),
        term_labels=config["report"].get("term_labels", {}),
    script:
        "../scripts/plot_diagnostics.py"


# the lagged mixed models (an outcome at session t + 1), in config order, and the RI-CLPMs
# (rules/dynamics.smk): the figure of the report's section "Which comes first"
LAGGED_MODELS = [n for n, m in MODELS.items() if str(m["outcome"]).endswith("_next")]
LAGGED_FIGURE_INPUTS = {
    "fits": [f"{RESULTS}/models/{m}/fit.json" for m in LAGGED_MODELS],
    "fixed": [f"{RESULTS}/models/{m}/fixed_effects.csv" for m in LAGGED_MODELS],
    "riclpm_fits": riclpm_results("fit.json"),
    "riclpm_parameters": riclpm_results("parameters.csv"),
}
# a simulated dataset's known truth (config dataset.truth, else TRUTH.yaml beside the sessions
# file when there is one), drawn beside the estimates and quoted by the report
TRUTH_PATH = truth_path(config["dataset"])
if TRUTH_PATH:
    LAGGED_FIGURE_INPUTS["truth"] = TRUTH_PATH


rule plot_lagged_dynamics:
    """Both cross-lags and both carry-overs: the RI-CLPM beside the lagged multilevel models."""
    input:
        **LAGGED_FIGURE_INPUTS,
    output:
        png=report(
            f"{FIGURES}/lagged_dynamics.png",
            caption="../report/lagged_dynamics.rst",
            category="Figures",
            subcategory="Lagged dynamics",
        ),
        svg=f"{FIGURES}/lagged_dynamics.svg",
    log:
        f"{LOGS}/plot_lagged_dynamics.log",
    benchmark:
        f"{BENCHMARKS}/plot_lagged_dynamics.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # reads a few small tables (the demo: under 1 s)
    resources:
        mem_mb=300,
        runtime=5,
    script:
        "../scripts/plot_lagged_dynamics.py"
