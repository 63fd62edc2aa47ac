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
