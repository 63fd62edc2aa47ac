"""Snakemake step (rule render_report_pdf): print the HTML report to PDF with headless Chromium."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

from alliance.report.core import html_to_pdf  # noqa: E402

html_to_pdf(snakemake.input.html, snakemake.output.pdf, snakemake.params.browser)  # noqa: F821
