# The model suite (config `models`, checked by alliance.models.config.check_models): one job per model,
# one job per stratum of a stratified model ({stratum}: the therapy x condition label
# combinations of dataset.labels, known before any data are read, plus `all`), then the
# effect-size tables of the forest plot and of meta-analyses. Logic: alliance.models.suite (fits),
# alliance.models.config (checks, strata; imported here without the engine).
from alliance.models.config import check_models, model_context, strata  # noqa: E402

check_models(config)
MODEL_CONTEXT = model_context(config)
STRATA = {
    name: sorted(strata(model, MODEL_CONTEXT["labels"]))
    for name, model in MODELS.items()
    if model.get("strata")
}


wildcard_constraints:
    stratum="|".join(sorted({s for names in STRATA.values() for s in names}))
    or "NO_STRATUM",


# the effects table of every stratum of every stratified model
STRATUM_EFFECTS = [
    f"{RESULTS}/models/{model}/strata/{stratum}/effects.csv"
    for model, names in sorted(STRATA.items())
    for stratum in names
]


rule fit_model:
    """Fit one model of the suite with the safeguarded engine; tables with flags on every row."""
    input:
        analysis=rules.clean_data.output.analysis,
        patients=rules.clean_data.output.patients,
    output:
        fixed=report(
            f"{RESULTS}/models/{{model}}/fixed_effects.csv",
            caption="../report/fixed_effects.rst",
            category="Models",
            subcategory="{model}",
        ),
        variance=report(
            f"{RESULTS}/models/{{model}}/variance_components.csv",
            caption="../report/variance_components.rst",
            category="Models",
            subcategory="{model}",
        ),
        contrasts=report(
            f"{RESULTS}/models/{{model}}/contrasts.csv",
            caption="../report/contrasts.rst",
            category="Models",
            subcategory="{model}",
        ),
        effects=f"{RESULTS}/models/{{model}}/effects.csv",
        fit_statistics=f"{RESULTS}/models/{{model}}/fit_statistics.csv",
        # both fits of a singular model (analysis.singular_fits; alliance.models.singular)
        singular_fit=f"{RESULTS}/models/{{model}}/singular_fit.csv",
        random_effects=f"{RESULTS}/models/{{model}}/random_effects.csv",
        residuals=f"{RESULTS}/models/{{model}}/residuals.parquet",
        fit=f"{RESULTS}/models/{{model}}/fit.json",
    log:
        f"{LOGS}/fit_model_{{model}}.log",
    benchmark:
        f"{BENCHMARKS}/fit_model_{{model}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # at 1.17M session rows (benchmarks/scale/): 2130 MB (moderation), 2.16 GB sampled; 277 s
    resources:
        mem_mb=2700,
        runtime=15,
    params:
        model=lambda wildcards: MODELS[wildcards.model],
        context=MODEL_CONTEXT,
        engine=config["run"].get("engine"),
        cross_check=config["run"].get("cross_check", False),
    script:
        "../scripts/fit_model.py"


rule fit_stratum:
    """Fit a stratified model without its moderators within one stratum (too few patients: reported, not fitted)."""
    input:
        analysis=rules.clean_data.output.analysis,
        patients=rules.clean_data.output.patients,
    output:
        fixed=f"{RESULTS}/models/{{model}}/strata/{{stratum}}/fixed_effects.csv",
        variance=f"{RESULTS}/models/{{model}}/strata/{{stratum}}/variance_components.csv",
        contrasts=f"{RESULTS}/models/{{model}}/strata/{{stratum}}/contrasts.csv",
        effects=f"{RESULTS}/models/{{model}}/strata/{{stratum}}/effects.csv",
        fit_statistics=f"{RESULTS}/models/{{model}}/strata/{{stratum}}/fit_statistics.csv",
        singular_fit=f"{RESULTS}/models/{{model}}/strata/{{stratum}}/singular_fit.csv",
        fit=f"{RESULTS}/models/{{model}}/strata/{{stratum}}/fit.json",
    log:
        f"{LOGS}/fit_stratum_{{model}}_{{stratum}}.log",
    benchmark:
        f"{BENCHMARKS}/fit_stratum_{{model}}_{{stratum}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # at 1.17M session rows (benchmarks/scale/): 1470 MB (all), 1.51 GB sampled; 67 s
    resources:
        mem_mb=1900,
        runtime=10,
    params:
        model=lambda wildcards: MODELS[wildcards.model],
        context=MODEL_CONTEXT,
        engine=config["run"].get("engine"),
        cross_check=config["run"].get("cross_check", False),
    script:
        "../scripts/fit_stratum.py"


rule summarise_effects:
    """Effect sizes across the suite: the forest-plot table and the meta-analysis table."""
    input:
        effects=model_results("effects.csv"),
        contrasts=model_results("contrasts.csv"),
        strata=STRATUM_EFFECTS,
    output:
        alliance_effects=report(
            f"{RESULTS}/effects/alliance_effects.csv",
            caption="../report/alliance_effects.rst",
            category="Effect sizes",
        ),
        effect_sizes=report(
            f"{RESULTS}/effects/effect_sizes.csv",
            caption="../report/effect_sizes.rst",
            category="Effect sizes",
        ),
    log:
        f"{LOGS}/summarise_effects.log",
    benchmark:
        f"{BENCHMARKS}/summarise_effects.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # at 1.17M session rows (benchmarks/scale/): 193 MB; 6 s
    resources:
        mem_mb=300,
        runtime=5,
    params:
        models=[MODELS[name] for name in sorted(MODELS)],
        context=MODEL_CONTEXT,
    script:
        "../scripts/summarise_effects.py"


# --- the analyses reviewers ask for (issue 13; docs/methods.md "Analyses for reviewers") -------
# Logic: alliance.models.multiplicity, .influence, .sensitivity. The report reads these tables.
STRATUM_FIXED = [
    f"{RESULTS}/models/{model}/strata/{stratum}/fixed_effects.csv"
    for model, names in sorted(STRATA.items())
    for stratum in names
]
_THERAPIST_MAPPED = "therapist" in config["dataset"].get("columns", {})
# leave-one-therapist-out: the primary model and every model with a therapist-level focal term
INFLUENCE_MODELS = sorted(
    name
    for name, model in MODELS.items()
    if _THERAPIST_MAPPED
    and (
        name == PRIMARY_MODEL
        or "between_therapist" in (model.get("roles") or {}).values()
    )
)
# sensitivity: the primary (same-session) model and every end-of-treatment (patient-level) model
SENSITIVITY_MODELS = sorted(
    name
    for name, model in MODELS.items()
    if model.get("roles")
    and name not in SKIPPED_MODELS  # not fitted in this design (rules/common.smk)
    and (name == PRIMARY_MODEL or model.get("data") == "patients")
)
# CIs of variance components and ICCs: the primary model and every model with a therapist random
# effect (the variance split, the therapist share set beside the literature's, the end-of-treatment
# models' therapist variance); each replicate is one refit
VARIANCE_CI_MODELS = sorted(
    name
    for name, model in MODELS.items()
    if name not in SKIPPED_MODELS  # not fitted in this design (rules/common.smk)
    and (
        name == PRIMARY_MODEL
        or any(
            "therapist" in (term.get("group"), term.get("nested_in"))
            for term in model.get("random") or []
        )
    )
)
REVIEWER_TABLES = (
    [f"{RESULTS}/models/multiplicity.csv"]
    + [f"{RESULTS}/models/{m}/variance_ci.csv" for m in VARIANCE_CI_MODELS]
    + [f"{RESULTS}/models/{m}/therapist_influence.csv" for m in INFLUENCE_MODELS]
    + [f"{RESULTS}/models/{m}/sensitivity.csv" for m in SENSITIVITY_MODELS]
)


rule adjust_multiplicity:
    """Holm and Benjamini-Hochberg p of every focal term across the suite and across strata."""
    input:
        fixed=model_results("fixed_effects.csv"),
        strata=STRATUM_FIXED,
    output:
        multiplicity=f"{RESULTS}/models/multiplicity.csv",
    log:
        f"{LOGS}/adjust_multiplicity.log",
    benchmark:
        f"{BENCHMARKS}/adjust_multiplicity.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # demo: reads the fixed-effects tables only (a few kB each); as summarise_effects
    resources:
        mem_mb=300,
        runtime=5,
    params:
        models=list(MODELS.values()),
    script:
        "../scripts/adjust_multiplicity.py"


rule therapist_influence:
    """The model refitted without each therapist in turn: estimates and DFBETAS of its focal terms."""
    input:
        analysis=rules.clean_data.output.analysis,
        patients=rules.clean_data.output.patients,
    output:
        influence=f"{RESULTS}/models/{{model}}/therapist_influence.csv",
    log:
        f"{LOGS}/therapist_influence_{{model}}.log",
    benchmark:
        f"{BENCHMARKS}/therapist_influence_{{model}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # demo (1 Dec 2026, 2 busy cores): 221 MB, 187 s (three_level: 61 fits); one fit at a time, so the
    # memory of fit_model's largest fit at 1.17M rows (2130 MB); runtime there ~61 x 277 s (not measured)
    resources:
        mem_mb=2700,
        runtime=900,
    params:
        model=lambda wildcards: MODELS[wildcards.model],
        engine=config["run"].get("engine"),
        # the structure the singular-fit policy chooses on the full data (alliance.models.refit)
        singular_fits=MODEL_CONTEXT["singular_fits"],
    script:
        "../scripts/therapist_influence.py"


rule fit_sensitivity:
    """The model's focal estimates: as specified, completers, sessions attended, low-alliance outliers winsorised."""
    input:
        analysis=rules.clean_data.output.analysis,
        patients=rules.clean_data.output.patients,
    output:
        sensitivity=f"{RESULTS}/models/{{model}}/sensitivity.csv",
    log:
        f"{LOGS}/fit_sensitivity_{{model}}.log",
    benchmark:
        f"{BENCHMARKS}/fit_sensitivity_{{model}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # demo (1 Dec 2026, 2 busy cores): 216 MB, 27 s; one fit at a time, so the memory of fit_model's
    # largest fit at 1.17M rows (2130 MB); runtime there ~2 x 277 s (not measured)
    resources:
        mem_mb=2700,
        runtime=30,
    params:
        model=lambda wildcards: MODELS[wildcards.model],
        engine=config["run"].get("engine"),
        winsor_sd=config["report"]["sensitivity"]["winsor_sd"],
        # the structure the singular-fit policy chooses on the full data (alliance.models.refit)
        singular_fits=MODEL_CONTEXT["singular_fits"],
    script:
        "../scripts/fit_sensitivity.py"


rule variance_ci:
    """Parametric-bootstrap CIs of every variance component, SD, correlation and ICC of the model."""
    input:
        analysis=rules.clean_data.output.analysis,
        patients=rules.clean_data.output.patients,
    output:
        variance_ci=f"{RESULTS}/models/{{model}}/variance_ci.csv",
    log:
        f"{LOGS}/variance_ci_{{model}}.log",
    benchmark:
        f"{BENCHMARKS}/variance_ci_{{model}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # demo, 200 replicates (1 Dec 2026, 2 cores at load 8-14): 217 MB; 272 s (same_session), 212 s
    # (baldwin); one refit at a time, so the memory of fit_model's largest fit at 1.17M rows (2130 MB);
    # runtime there ~200 x 277 s: lower report.variance_ci.replicates for a large dataset
    resources:
        mem_mb=2700,
        runtime=900,
    params:
        model=lambda wildcards: MODELS[wildcards.model],
        engine=config["run"].get("engine"),
        seed=config["run"]["seed"],
        settings=config["report"]["variance_ci"],
    script:
        "../scripts/variance_ci.py"
