"""Snakemake step (rule render_report_pdf): print the HTML report (and its supplement) to PDF with headless Chromium."""

from alliance import step

snakemake = step.start(globals())

from alliance.report.pdf import html_to_pdf

html_to_pdf(snakemake.input.html, snakemake.output.pdf, snakemake.params.browser)
if "supplement" in snakemake.input.keys():  # the pooled report (rules/pooling.smk) has none
    html_to_pdf(snakemake.input.supplement, snakemake.output.supplement, snakemake.params.browser)
