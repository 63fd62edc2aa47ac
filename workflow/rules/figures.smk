rule plot_within_between:
    """Within-patient and between-patient alliance-symptom association."""
    input:
        analysis=rules.clean_data.output.analysis,
        fixed=primary_model_fixed,
    output:
        png=report(
            f"{RESULTS}/figures/within_between.png",
            caption="../report/within_between.rst",
            category="Figures",
        ),
        svg=f"{RESULTS}/figures/within_between.svg",
    log:
        f"{LOGS}/plot_within_between.log",
    conda:
        "../../environment.yml"
    threads: 1
    params:
        seed=config["run"]["seed"],
    script:
        "../scripts/plot_within_between.py"
