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
    # peak RSS grows with the export (/usr/bin/time -v of the step run by hand, 1 Dec 2026): 1.9 GB on
    # 106 MB of input (1.17M session rows, config/scale.yaml), 3.77 GB on 214 MB (2.34M rows, make_scale_data.py
    # --patients-per-therapist 200): about 300 MB + 17.5 x the input's MB; declared 1.25 x that, at least 1 GB
    resources:
        mem_mb=clean_data_mem_mb,
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
