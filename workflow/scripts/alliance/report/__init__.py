"""Report stage: figures, the report's context and wording, tables, HTML and PDF."""
