# Alliance-outcome pipeline: clean -> models -> figures -> report.
# Run with `make run`; the rules live in workflow/rules/, the logic in workflow/scripts/alliance/.
from snakemake.utils import min_version, validate

min_version("9.27")


# The demo config, unless a lab's own is given (--configfile): a lab's config replaces it
# whole rather than being merged into it (its measures or columns may differ in kind).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, schema="workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/clean.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        REPORT_HTML,
        REPORT_PDF if PDF_BROWSER else [],
