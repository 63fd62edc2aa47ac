# Lagged dynamics: the random-intercept cross-lagged panel models of the suite (config `models`
# entries with `type: riclpm`, checked by alliance.models.config.check_models in rules/models.smk),
# one job per model; the mixed-effects rules never see them (MODELS in rules/common.smk leaves
# them out). Logic: alliance.models.riclpm_suite (wide data of the first K sessions, both path
# settings, the tables), alliance.dynamics.riclpm (the FIML estimator). RICLPM_MODELS and
# riclpm_results() are in rules/common.smk.
rule fit_riclpm:
    """Fit one RI-CLPM (paths constrained and free, the likelihood-ratio test of the constraint); tables with flags."""
    input:
        analysis=rules.clean_data.output.analysis,
    output:
        parameters=report(
            f"{RESULTS}/models/{{riclpm}}/parameters.csv",
            caption="../report/riclpm_parameters.rst",
            category="Models",
            subcategory="{riclpm}",
        ),
        fit_indices=f"{RESULTS}/models/{{riclpm}}/fit_indices.csv",
        long_run=f"{RESULTS}/models/{{riclpm}}/long_run.csv",
        constraint_test=f"{RESULTS}/models/{{riclpm}}/constraint_test.csv",
        fit=f"{RESULTS}/models/{{riclpm}}/fit.json",
    log:
        f"{LOGS}/fit_riclpm_{{riclpm}}.log",
    benchmark:
        f"{BENCHMARKS}/fit_riclpm_{{riclpm}}.tsv"
    wildcard_constraints:
        riclpm="|".join(RICLPM_MODELS) or "NO_RICLPM",
    conda:
        "../../environment.yml"
    threads: 1
    # the demo (600 patients x 7 waves): about 4 s and 300 MB for both fits
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        model=lambda wildcards: RICLPM_MODELS[wildcards.riclpm],
    script:
        "../scripts/fit_riclpm.py"


rule riclpm_all:
    """Every RI-CLPM of the config (`snakemake riclpm_all`), until the report reads them."""
    input:
        riclpm_results("fit.json"),
