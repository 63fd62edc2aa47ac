"""Snakemake logger plugin ``alliance``: the console of ``make run`` (logic: ``alliance.console``).

Snakemake finds logger plugins by their module name (``snakemake_logger_plugin_<name>``) on the
Python path; ``make run`` puts ``workflow/scripts`` there and passes ``--logger alliance``. Without
it (``.venv/bin/snakemake`` by hand) Snakemake prints its own console.
"""

from alliance.console import ConsoleHandler as LogHandler

__all__ = ["LogHandler"]
