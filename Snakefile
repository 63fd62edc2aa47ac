# Alliance-outcome pipeline. The workflow is workflow/Snakefile (the layout of published Snakemake
# workflows); this file lets `snakemake` and `make run` work from the repository root.


include: "workflow/Snakefile"


# Snakemake takes its default target from the Snakefile it was given, never from an included one:
# `snakemake` here builds what `rule all` of workflow/Snakefile builds.
rule default:
    input:
        rules.all.input,
