rule clean_data:
    """Read, screen, validate, score and derive: the analysis-ready dataset."""
    input:
        unpack(lambda wildcards: raw_inputs()),
    output:
        analysis=f"{RESULTS}/clean/analysis.parquet",
        patients=f"{RESULTS}/clean/patients.parquet",
        dictionary=report(
            f"{RESULTS}/clean/data_dictionary.csv",
            caption="../report/data_dictionary.rst",
            category="Data",
        ),
        validation=report(
            f"{RESULTS}/clean/validation_report.csv",
            caption="../report/validation_report.rst",
            category="Data",
        ),
        flow=report(
            f"{RESULTS}/clean/exclusion_flow.csv",
            caption="../report/exclusion_flow.rst",
            category="Data",
        ),
        summary=f"{RESULTS}/clean/summary.json",
        reliability=report(
            f"{RESULTS}/clean/reliability.csv",
            caption="../report/reliability.rst",
            category="Data",
        ),
        item_rest=report(
            f"{RESULTS}/clean/item_rest.csv",
            caption="../report/item_rest.rst",
            category="Data",
        ),
    log:
        f"{LOGS}/clean_data.log",
    benchmark:
        f"{BENCHMARKS}/clean_data.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # memory from the export's size, as measured (alliance.intake.resources)
    resources:
        mem_mb=intake_mem_mb,
        runtime=10,
    params:
        dataset=config["dataset"],
        analysis=config["analysis"],
        cleaning=config.get("cleaning", {}),
        instruments=config.get("instruments", {}),
    script:
        "../scripts/clean_data.py"


rule clean_all:
    """Run only the intake stage (`make clean-data`): check a new dataset before any model runs."""
    input:
        rules.clean_data.output,
