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
    log:
        f"{LOGS}/clean_data.log",
    benchmark:
        f"{BENCHMARKS}/clean_data.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # at 1.17M session rows (benchmarks/scale/): 1523 MB in its benchmark, 1.76 GB sampled (docs/engines.md); 134 s
    resources:
        mem_mb=2200,
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
