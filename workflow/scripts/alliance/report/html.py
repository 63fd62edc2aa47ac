"""The report as one self-contained HTML file: the template rendered with a context from
``alliance.report.context``, figures embedded as data URIs, and the provenance it states
(package versions, the workflow's git commit)."""

from __future__ import annotations

import base64
import io
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape
from PIL import Image

from alliance.report.main_context import flag_words
from alliance.report.terms import readable_text, term_label
from alliance.report.wording import TEMPLATE_DIR, fmt, fmt_p, fmt_r, pct, wbr

PACKAGES = (
    "snakemake",
    "pandas",
    "numpy",
    "scipy",
    "statsmodels",
    "mixedlm",
    "pingouin",
    "matplotlib",
    "pandera",
    "pyarrow",
    "jinja2",
)
#: the workflow's checkout (the repository root), whose commit the report names
WORKFLOW_DIR = Path(__file__).resolve().parents[4]


def embed_png(path: str | Path, colours: int | None = 256) -> str:
    """A PNG as a data URI, so the report needs no other file.

    With ``colours`` the embedded copy is reduced to a palette of that many colours (median
    cut, no dithering: deterministic, and to the eye the same figure at a third of the bytes),
    which keeps the report small; the PNG files in results/ keep full colour.
    """
    data = Path(path).read_bytes()
    if colours:
        with Image.open(io.BytesIO(data)) as image:
            palette = image.convert("RGB").quantize(
                colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
            )
            buffer = io.BytesIO()
            palette.save(buffer, format="PNG", optimize=True)
        data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def package_versions() -> dict[str, str]:
    """Versions of the packages that produced the numbers."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(directory: str | Path = WORKFLOW_DIR) -> str:
    """The git commit of the workflow's checkout (not of the working directory), or 'unknown'."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory, capture_output=True, text=True
        ).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def plain_text(text: Any, labels: dict[str, str]) -> Markup:
    """Free text from another stage as the report shows it: identifiers by their labels, pointers
    into the methods notes dropped, file names set as code (``alliance.report.terms.readable_text``)."""
    readable, files = readable_text(text, labels)
    out = str(escape(readable))
    for name in sorted(set(files), key=len, reverse=True):
        out = out.replace(str(escape(name)), f"<code>{escape(name)}</code>")
    return Markup(out)


def render_html(context: dict[str, Any], template: str = "report.html.j2") -> str:
    """Render the report template with a context from ``alliance.report.context.report_context``
    (``template``: the supplement, ``supplement.html.j2``, or another template of workflow/report,
    e.g. one section, for its tests)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.filters["p"] = fmt_p
    env.filters["r"] = fmt_r
    env.filters["pct"] = pct
    env.filters["wbr"] = wbr
    labels = context.get("term_labels") or {}
    env.filters["term"] = lambda name: term_label(name, labels)
    env.filters["flag_words"] = flag_words
    models = {**(context.get("model_labels") or {}), **labels}  # a model by its label, in tables and text
    env.filters["model"] = lambda name: models.get(str(name), term_label(name, labels))
    env.filters["plain"] = lambda text: plain_text(text, models)
    return env.get_template(template).render(**context, json=json)
