# Several studies in one run: every study through the intake and its models as its own jobs
# ({study}), harmonised to one scale, pooled in two stages and in one, the multiverse one job per
# specification ({specification}), then the forest plots, the specification curve and the pooled
# report (docs/methods.md section 11). Paths and helpers: rules/pooling_common.smk.
# Resources: every step's peak RSS on the five-study demo (benchmarks/demo_ipd/, 2 Dec 2026) was at
# most 261 MB (intake), 240 MB (one-stage and multiverse fits), 229 MB (figures, report), except the
# PDF's Chromium (1.20 GB); the declared mem_mb leave room for studies several times larger, and
# runtime (minutes) is at least 10 x the slowest job there (22.6 s).


rule clean_study:
    """One study's intake, exactly as a single-study run's (rule clean_data), on its own config blocks."""
    input:
        unpack(lambda wildcards: study_raw_inputs(STUDIES[wildcards.study])),
    output:
        analysis=f"{RESULTS}/studies/{{study}}/clean/analysis.parquet",
        patients=f"{RESULTS}/studies/{{study}}/clean/patients.parquet",
        dictionary=f"{RESULTS}/studies/{{study}}/clean/data_dictionary.csv",
        validation=f"{RESULTS}/studies/{{study}}/clean/validation_report.csv",
        flow=f"{RESULTS}/studies/{{study}}/clean/exclusion_flow.csv",
        summary=f"{RESULTS}/studies/{{study}}/clean/summary.json",
        reliability=f"{RESULTS}/studies/{{study}}/clean/reliability.csv",
        item_rest=f"{RESULTS}/studies/{{study}}/clean/item_rest.csv",
    log:
        f"{LOGS}/studies/{{study}}/clean_data.log",
    benchmark:
        f"{BENCHMARKS}/studies/{{study}}/clean_data.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=intake_mem_mb,
        runtime=10,
    params:
        dataset=lambda wildcards: STUDIES[wildcards.study]["dataset"],
        analysis=lambda wildcards: STUDIES[wildcards.study]["analysis"],
        cleaning=lambda wildcards: STUDIES[wildcards.study]["cleaning"],
        instruments=lambda wildcards: STUDIES[wildcards.study]["instruments"],
    script:
        "../scripts/clean_data.py"


rule clean_all:
    """Only the intake of every study (`make clean-data`): check the exports before any model runs."""
    input:
        study_file("clean/validation_report.csv"),


rule harmonise_study:
    """One study on the common scale: the session window, the outcome (POMP or z), the alliance z."""
    input:
        analysis=rules.clean_study.output.analysis,
        patients=rules.clean_study.output.patients,
    output:
        sessions=f"{RESULTS}/studies/{{study}}/harmonised/sessions.parquet",
        patients=f"{RESULTS}/studies/{{study}}/harmonised/patients.parquet",
        record=f"{RESULTS}/studies/{{study}}/harmonised/record.json",
    log:
        f"{LOGS}/studies/{{study}}/harmonise.log",
    benchmark:
        f"{BENCHMARKS}/studies/{{study}}/harmonise.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        study=lambda wildcards: wildcards.study,
        window=[FIRST_SESSION, LAST_SESSION],
        outcome_scale=config["pooling"]["outcome_scale"],
        instruments=lambda wildcards: STUDIES[wildcards.study]["instruments"],
        alliance_measure=lambda wildcards: STUDIES[wildcards.study]["analysis"][
            "alliance_measure"
        ],
        measures=lambda wildcards: STUDIES[wildcards.study]["dataset"]["measures"],
        moderators=lambda wildcards: STUDIES[wildcards.study]["moderators"],
        label=lambda wildcards: STUDIES[wildcards.study]["label"],
    script:
        "../scripts/harmonise_study.py"


rule fit_study_model:
    """One model of pooling.effects in one study: its focal coefficients with SEs and flags (stage one)."""
    input:
        sessions=rules.harmonise_study.output.sessions,
        patients=rules.harmonise_study.output.patients,
    output:
        estimates=f"{RESULTS}/studies/{{study}}/effects/{{model}}.csv",
    log:
        f"{LOGS}/studies/{{study}}/fit_{{model}}.log",
    benchmark:
        f"{BENCHMARKS}/studies/{{study}}/fit_{{model}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        study=lambda wildcards: wildcards.study,
        choices=lambda wildcards: effect_specification(wildcards.model),
        waves=LAST_SESSION,
        winsor_sd=WINSOR_SD,
        engine=config["run"]["engine"],
        singular_fits=lambda wildcards: STUDIES[wildcards.study]["analysis"].get(
            "singular_fits"
        ),
    script:
        "../scripts/fit_study_model.py"


rule pool_effects:
    """Stage two: random-effects pooling (REML, Knapp-Hartung), heterogeneity, leave-one-out, meta-regression."""
    input:
        estimates=expand(
            f"{RESULTS}/studies/{{study}}/effects/{{model}}.csv",
            study=list(STUDIES),
            model=STUDY_MODELS,
        ),
        records=study_file("harmonised/record.json"),
        truth=[TRUTH] if TRUTH else [],
    output:
        study_estimates=f"{RESULTS}/pooled/study_estimates.csv",
        pooled=f"{RESULTS}/pooled/pooled.csv",
        leave_one_out=f"{RESULTS}/pooled/leave_one_out.csv",
        meta_regression=f"{RESULTS}/pooled/meta_regression.csv",
        harmonisation=f"{RESULTS}/pooled/harmonisation.csv",
        truth=f"{RESULTS}/pooled/truth.csv",
    log:
        f"{LOGS}/pool_effects.log",
    benchmark:
        f"{BENCHMARKS}/pool_effects.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        effects=POOLED,
        level=config["pooling"]["level"],
        outcome_scale=config["pooling"]["outcome_scale"],
    script:
        "../scripts/pool_effects.py"


rule fit_one_stage:
    """The one-stage model: every patient of every study in one mixed model with study as a level."""
    input:
        sessions=study_file("harmonised/sessions.parquet"),
    output:
        estimates=f"{RESULTS}/pooled/one_stage.csv",
        fit=f"{RESULTS}/pooled/one_stage_fit.json",
    log:
        f"{LOGS}/fit_one_stage.log",
    benchmark:
        f"{BENCHMARKS}/fit_one_stage.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=20,
    params:
        engine=config["run"]["engine"],
        level=config["pooling"]["level"],
    script:
        "../scripts/fit_one_stage.py"


rule fit_specification:
    """One specification of the multiverse: fitted in every study, then pooled (one job each)."""
    input:
        sessions=study_file("harmonised/sessions.parquet"),
        patients=study_file("harmonised/patients.parquet"),
    output:
        estimates=f"{RESULTS}/multiverse/specifications/{{specification}}.csv",
    log:
        f"{LOGS}/multiverse/{{specification}}.log",
    benchmark:
        f"{BENCHMARKS}/multiverse/{{specification}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    params:
        specification=lambda wildcards: wildcards.specification,
        choices=lambda wildcards: SPECIFICATIONS[wildcards.specification],
        studies=list(STUDIES),
        waves=LAST_SESSION,
        winsor_sd=WINSOR_SD,
        engine=config["run"]["engine"],
        level=config["pooling"]["level"],
        outcome_scale=config["pooling"]["outcome_scale"],
    script:
        "../scripts/fit_specification.py"


rule summarise_multiverse:
    """The specification curve's table and its summary: share of CIs excluding 0, median, the choice that moves it most."""
    input:
        specifications=expand(
            f"{RESULTS}/multiverse/specifications/{{specification}}.csv",
            specification=sorted(SPECIFICATIONS),
        ),
    output:
        curve=f"{RESULTS}/multiverse/curve.csv",
        summary=f"{RESULTS}/multiverse/summary.csv",
        choices=f"{RESULTS}/multiverse/choices.csv",
    log:
        f"{LOGS}/summarise_multiverse.log",
    benchmark:
        f"{BENCHMARKS}/summarise_multiverse.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        dimensions=list(DIMENSIONS),
    script:
        "../scripts/summarise_multiverse.py"


rule plot_pooled_forest:
    """A forest plot per pooled effect: studies with weights, the pooled diamond, the prediction interval."""
    input:
        study_estimates=rules.pool_effects.output.study_estimates,
        pooled=rules.pool_effects.output.pooled,
        truth=rules.pool_effects.output.truth,
    output:
        png=f"{RESULTS}/figures/forest_{{effect}}.png",
    log:
        f"{LOGS}/plot_forest_{{effect}}.log",
    benchmark:
        f"{BENCHMARKS}/plot_forest_{{effect}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        effect=lambda wildcards: wildcards.effect,
        # no published benchmark shares these designs (within-patient, harmonised scale): none is drawn
        benchmark=None,
    script:
        "../scripts/plot_pooled_forest.py"


rule plot_specification_curve:
    """The specification curve of the multiverse, the choices marked beneath."""
    input:
        curve=rules.summarise_multiverse.output.curve,
        truth=rules.pool_effects.output.truth,
    output:
        png=f"{RESULTS}/figures/specification_curve.png",
    log:
        f"{LOGS}/plot_specification_curve.log",
    benchmark:
        f"{BENCHMARKS}/plot_specification_curve.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        dimensions=list(DIMENSIONS),
    script:
        "../scripts/plot_specification_curve.py"


POOLED_REPORT_INPUTS = {
    "template": str(WORKFLOW_DIR / "report" / "pooled_report.html.j2"),
    "template_parts": [
        str(WORKFLOW_DIR / "report" / f) for f in ("macros.html.j2", "style.html.j2")
    ],
    "harmonisation": rules.pool_effects.output.harmonisation,
    "study_estimates": rules.pool_effects.output.study_estimates,
    "pooled": rules.pool_effects.output.pooled,
    "leave_one_out": rules.pool_effects.output.leave_one_out,
    "meta_regression": rules.pool_effects.output.meta_regression,
    "truth": rules.pool_effects.output.truth,
    "one_stage": rules.fit_one_stage.output.estimates,
    "one_stage_fit": rules.fit_one_stage.output.fit,
    "summaries": study_file("clean/summary.json"),
    "forests": expand(f"{RESULTS}/figures/forest_{{effect}}.png", effect=POOLED),
}
if SPECIFICATIONS:
    POOLED_REPORT_INPUTS |= {
        "curve": rules.summarise_multiverse.output.curve,
        "multiverse_summary": rules.summarise_multiverse.output.summary,
        "multiverse_choices": rules.summarise_multiverse.output.choices,
        "fig_curve": rules.plot_specification_curve.output.png,
    }


rule render_pooled_report:
    """The pooled report: harmonisation, pooled effects beside the truth, forest plots, the multiverse."""
    input:
        **POOLED_REPORT_INPUTS,
    output:
        html=REPORT_HTML,
    log:
        f"{LOGS}/render_report.log",
    benchmark:
        f"{BENCHMARKS}/render_report.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        title=config["pooling"]["title"],
        run=config["run"],
        pooling=config["pooling"],
        multiverse=config.get("multiverse") or {},
        studies={
            name: {k: s[k] for k in ("label", "moderators")}
            for name, s in STUDIES.items()
        },
        effects=POOLED,
    script:
        "../scripts/render_pooled_report.py"


rule render_pooled_report_pdf:
    """The pooled report as PDF (headless Chromium), when a browser is installed."""
    input:
        html=REPORT_HTML,
    output:
        pdf=REPORT_PDF,
    log:
        f"{LOGS}/render_report_pdf.log",
    benchmark:
        f"{BENCHMARKS}/render_report_pdf.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    # Chromium: 1.20 GB on the demo
    resources:
        mem_mb=1600,
        runtime=5,
    params:
        browser=PDF_BROWSER,
    script:
        "../scripts/render_report_pdf.py"
