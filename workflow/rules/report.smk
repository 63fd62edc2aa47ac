rule render_report:
    """The narrative HTML report: data summary, model tables, figures, provenance."""
    input:
        summary=rules.clean_data.output.summary,
        flow=rules.clean_data.output.flow,
        validation=rules.clean_data.output.validation,
        fixed=model_results("fixed_effects.csv"),
        variance=model_results("variance_components.csv"),
        fits=model_results("fit.json"),
        figure=rules.plot_within_between.output.png,
    output:
        html=REPORT_HTML,
    log:
        f"{LOGS}/render_report.log",
    conda:
        "../../environment.yml"
    threads: 1
    params:
        title=config["run"]["title"],
        config=config,
        models=[MODELS[name] for name in sorted(MODELS)],
    script:
        "../scripts/render_report.py"
