"""The narrative HTML report: one self-contained file, figures embedded, no network."""

from __future__ import annotations

import base64
import datetime as dt
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import yaml

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "report"
PACKAGES = ("snakemake", "pandas", "numpy", "scipy", "statsmodels", "pingouin", "matplotlib", "pandera", "pyarrow")


def embed_png(path: str | Path) -> str:
    """A PNG as a data URI, so the report needs no other file."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def package_versions() -> dict[str, str]:
    """Versions of the packages that produced the numbers."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(directory: str | Path = ".") -> str:
    """The git commit of the workflow, or 'unknown' outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory, capture_output=True, text=True
        ).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if isinstance(value, float):
        if abs(value) < 0.001 and value != 0:
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return str(value)


def _p(value: float) -> str:
    if value is None or pd.isna(value):
        return "–"
    return "< .001" if value < 0.001 else f"{value:.3f}".lstrip("0")


def render_report(
    *,
    title: str,
    summary: dict[str, Any],
    flow: pd.DataFrame,
    findings: pd.DataFrame,
    models: list[dict[str, Any]],
    fixed: list[pd.DataFrame],
    variance: list[pd.DataFrame],
    fits: list[dict[str, Any]],
    figures: dict[str, str | Path],
    config: dict[str, Any],
    run_date: str | None = None,
) -> str:
    """Render the report HTML from the run's own result files."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters["fmt"] = _fmt
    env.filters["p"] = _p
    findings_by_reason = (
        findings.groupby(["reason", "action"]).size().rename("count").reset_index().to_dict(orient="records")
        if len(findings)
        else []
    )
    template = env.get_template("report.html.j2")
    return template.render(
        title=title,
        summary=summary,
        flow=flow.to_dict(orient="records"),
        findings=findings.head(200).to_dict(orient="records"),
        n_findings=len(findings),
        findings_by_reason=findings_by_reason,
        models=[
            {"config": m, "fixed": f.to_dict(orient="records"), "variance": v.to_dict(orient="records"), "fit": s}
            for m, f, v, s in zip(models, fixed, variance, fits)
        ],
        figures={name: embed_png(path) for name, path in figures.items()},
        config_yaml=yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
        versions=package_versions(),
        commit=git_commit(),
        run_date=run_date or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        json=json,
    )
