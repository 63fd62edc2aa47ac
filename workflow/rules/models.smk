rule fit_model:
    """Fit one model of the suite with the safeguarded engine."""
    input:
        analysis=rules.clean_data.output.analysis,
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
        fit=f"{RESULTS}/models/{{model}}/fit.json",
    log:
        f"{LOGS}/fit_model_{{model}}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        spec=lambda wildcards: MODELS[wildcards.model],
    script:
        "../scripts/fit_model.py"
