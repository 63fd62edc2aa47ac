"""References to the project's documents resolve, and docs/methods.md describes every model.

Code, config, templates and docs cite documents by path and section: ``methods.md §4``,
``methods.md section 5, item 3`` (= §5.3), ``methods.md section 5 (items 1-6)``, ``docs/engines.md``,
``config/README.md``, markdown links ``[text](file.md#anchor)``, the variable names of methods.md's
centring table (``methods wai_cwt``) and, inside docs/methods.md, its own ``§N`` cross-references.
Each must name a file that exists and, where it names one, a section (a numbered heading), an
anchor (a heading's GitHub slug) or a name that the file has.  docs/methods.md must also have an
entry (a heading naming the model) for every model of the shipped configurations, and, for
``config/config.yaml``, show in that entry the lme4 formula the pipeline writes and the equations
per level.  The checkers take the repository root as an argument, so the last tests run them on
small broken trees and show that they report what is broken.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from alliance.engines.spec import to_lme4_formula
from alliance.models.config import stratum_model
from alliance.models.specs import spec_from_config
from testkit import ROOT

METHODS = Path("docs") / "methods.md"
#: files whose text is searched for references (by suffix, or by exact name)
SCANNED_SUFFIXES = frozenset({".py", ".smk", ".j2", ".yaml", ".yml", ".md", ".rst", ".R", ".toml", ".cfg"})
SCANNED_NAMES = frozenset({"Snakefile", "Makefile"})
#: directories never searched: environments, caches and the run's outputs (they quote the sources)
SKIPPED_DIRS = frozenset(
    {".git", ".venv", ".snakemake", "results", "reports", "logs", "__pycache__", ".pytest_cache", ".ruff_cache", "out"}
)
#: this file: its self-tests write broken references on purpose
THIS_FILE = Path(__file__).resolve()

_LOCATOR = (
    r"(?:\s*(?:§\s*|section\s+|sec\.\s*|s\.\s*)(?P<section>\d+(?:\.\d+)*)"
    r"(?:,?\s*\(?items?\s+(?P<first>\d+)(?:\s*[-–]\s*(?P<last>\d+))?\)?)?)?"
)
#: a document path with a directory (docs/engines.md, config/README.md) or methods.md itself
DOC_PATH = re.compile(r"(?<![\w./-])(?P<path>(?:[\w-]+/)+[\w.-]+\.md|methods\.md)(?:#(?P<anchor>[\w-]+))?" + _LOCATOR)
#: "methods section 4" (no .md) means docs/methods.md
BARE_METHODS = re.compile(r"\bmethods\s+(?:section\s+|§\s*)(?P<section>\d+(?:\.\d+)*)")
#: "methods wai_cwt": a variable name of methods.md's centring tables
METHODS_NAME = re.compile(r"\bmethods\s+(?P<name>wai_\w+)")
#: a markdown link to a document or an anchor, relative to the linking file
MD_LINK = re.compile(r"\]\((?P<path>[^)\s#]*\.md)?(?:#(?P<anchor>[^)\s]+))?\)")
#: a section cross-reference inside docs/methods.md
SECTION_SIGN = re.compile(r"§\s*(?P<section>\d+(?:\.\d+)*)")
HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<title>.+?)\s*#*\s*$")
NUMBERED = re.compile(r"^(?P<number>\d+(?:\.\d+)*)\.?\s")


@dataclass(frozen=True)
class Reference:
    """One reference found in a file: where it is, what it names, and the file it points to."""

    source: Path  # relative to the root
    line: int
    text: str
    target: Path  # relative to the root, as resolved
    sections: tuple[str, ...] = ()
    anchor: str | None = None
    name: str | None = None

    def where(self) -> str:
        return f"{self.source}:{self.line}: {self.text!r}"


@dataclass(frozen=True)
class Document:
    """What a markdown file offers to a reference: numbered sections, heading anchors, its text."""

    sections: frozenset[str]
    anchors: frozenset[str]
    text: str
    headings: tuple[tuple[int, str, int], ...]  # (level, title, line index) in order


# --------------------------------------------------------------------------- reading documents


def slug(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens.

    >>> slug("7. Estimation, numerical safeguards, flags and inference"), slug("`three_level`")
    ('7-estimation-numerical-safeguards-flags-and-inference', 'three_level')
    """
    text = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return text.replace(" ", "-")


def read_document(path: Path) -> Document:
    """Numbered headings (``## 5. The model suite`` -> '5', ``### 5.3 Lagged`` -> '5.3'), heading
    anchors (with GitHub's -1, -2 suffixes for repeated titles, and explicit ``<a id=...>``) and text."""
    text = path.read_text(encoding="utf-8")
    sections, anchors, headings, seen = set(), set(), [], {}
    in_code = False
    for index, line in enumerate(text.splitlines()):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        heading = HEADING.match(line) if not in_code else None
        if not heading:
            continue
        title = heading["title"]
        headings.append((len(heading["hashes"]), title, index))
        if numbered := NUMBERED.match(title):
            sections.add(numbered["number"])
        base = slug(title)
        count = seen.get(base, 0)
        anchors.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    anchors |= set(re.findall(r"""<a\s+(?:id|name)=["']([^"']+)["']""", text))
    return Document(frozenset(sections), frozenset(anchors), text, tuple(headings))


# --------------------------------------------------------------------------- finding references


def scanned_files(root: Path) -> list[Path]:
    """The files of the repository whose text can cite a document, sorted."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            path = Path(directory) / name
            if (path.suffix in SCANNED_SUFFIXES or name in SCANNED_NAMES) and path.resolve() != THIS_FILE:
                found.append(path)
    return found


def _sections(match: re.Match) -> tuple[str, ...]:
    """'5' -> ('5',); 'section 5, item 3' -> ('5.3',); 'section 5 (items 1-6)' -> ('5', '5.1', ... '5.6')."""
    section = match["section"]
    if not section:
        return ()
    if not match["first"]:
        return (section,)
    first, last = int(match["first"]), int(match["last"] or match["first"])
    items = tuple(f"{section}.{k}" for k in range(first, last + 1))
    return items if last == first else (section, *items)


def _resolve(path: str, source: Path, root: Path) -> Path:
    """A referenced path relative to the root: ``methods.md`` is docs/methods.md; other paths are
    tried from the root, then from the citing file's directory."""
    if path == "methods.md":
        return METHODS
    for candidate in (Path(path), source.parent / path):
        if (root / candidate).exists():
            return Path(os.path.normpath(candidate))
    return Path(path)


def references_in(relative: Path, text: str, root: Path) -> list[Reference]:
    """Every reference to a document in one file's text (``relative`` to the root)."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for m in DOC_PATH.finditer(line):
            target = _resolve(m["path"], relative, root)
            found.append(Reference(relative, number, m.group(0).strip(), target, _sections(m), m["anchor"]))
        for m in BARE_METHODS.finditer(line):
            found.append(Reference(relative, number, m.group(0), METHODS, (m["section"],)))
        for m in METHODS_NAME.finditer(line):
            found.append(Reference(relative, number, m.group(0), METHODS, name=m["name"]))
        if relative.suffix != ".md":
            continue
        for m in MD_LINK.finditer(line):
            if m["path"] and re.match(r"[a-z]+://", m["path"]):
                continue
            target = _resolve(m["path"], relative, root) if m["path"] else relative
            found.append(Reference(relative, number, m.group(0), target, anchor=m["anchor"]))
        if relative == METHODS:
            for m in SECTION_SIGN.finditer(line):
                found.append(Reference(relative, number, m.group(0), METHODS, (m["section"],)))
    return found


def find_references(root: Path) -> list[Reference]:
    """Every reference to a document in the repository under ``root``."""
    refs = []
    for path in scanned_files(root):
        text = path.read_text(encoding="utf-8", errors="replace")
        refs += references_in(path.relative_to(root), text, root)
    return refs


def reference_problems(refs: list[Reference], root: Path) -> list[str]:
    """What is wrong with each reference: a missing file, section, anchor or name (one line each)."""
    documents: dict[Path, Document] = {}
    problems = []
    for ref in refs:
        path = root / ref.target
        if not path.is_file():
            problems.append(f"{ref.where()}: {ref.target} does not exist")
            continue
        if path.suffix != ".md":
            continue
        doc = documents.setdefault(ref.target, read_document(path))
        for section in ref.sections:
            if section not in doc.sections:
                problems.append(f"{ref.where()}: {ref.target} has no section {section}")
        if ref.anchor and ref.anchor not in doc.anchors:
            problems.append(f"{ref.where()}: {ref.target} has no anchor #{ref.anchor}")
        if ref.name and not re.search(rf"\b{re.escape(ref.name)}\b", doc.text):
            problems.append(f"{ref.where()}: {ref.target} does not define {ref.name}")
    return problems


# --------------------------------------------------------------------------- model entries


def model_entry(doc: Document, name: str) -> str | None:
    """The text of the entry of a model: from the heading that names it in backticks to the next
    heading of the same or a higher level (None when no heading names it)."""
    lines = doc.text.splitlines()
    for k, (level, title, start) in enumerate(doc.headings):
        if f"`{name}`" in title:
            end = next((i for lv, _, i in doc.headings[k + 1 :] if lv <= level), len(lines))
            return "\n".join(lines[start:end])
    return None


def model_entry_problems(doc: Document, models: list[dict], *, formulas: bool) -> list[str]:
    """Models without an entry and, with ``formulas``, entries that lack the lme4 formula the
    pipeline writes (also that of the strata of a stratified model) or the equations per level."""
    problems = []
    for model in models:
        entry = model_entry(doc, model["name"])
        if entry is None:
            problems.append(f"model {model['name']!r} has no entry (a heading with `{model['name']}`)")
            continue
        if not formulas or model.get("type") == "riclpm":  # an RI-CLPM has no lme4 formula (section 5.7)
            continue
        wanted = [to_lme4_formula(spec_from_config(model))]
        if model.get("strata"):
            wanted.append(to_lme4_formula(spec_from_config(stratum_model(model))))
        for formula in wanted:
            if formula not in entry:
                problems.append(f"model {model['name']!r}: its entry does not show the fitted formula {formula}")
        if "Level 1" not in entry:
            problems.append(f"model {model['name']!r}: its entry has no equations per level ('Level 1 ...')")
    return problems


def configs_with_models() -> list[Path]:
    return sorted(p for p in (ROOT / "config").glob("*.yaml") if (yaml.safe_load(p.read_text()) or {}).get("models"))


# --------------------------------------------------------------------------- the repository


REFERENCES = find_references(ROOT)


def test_the_finder_sees_the_references_the_code_makes():
    # guards the test below against passing because nothing was found
    to_methods = [r for r in REFERENCES if r.target == METHODS and r.source != METHODS]
    assert len(to_methods) >= 45, [r.where() for r in to_methods]
    cited = {s for r in to_methods for s in r.sections}
    assert {"1", "3", "4", "5", "5.1", "5.2", "5.3", "5.4", "5.5", "5.6", "6", "7.2", "8"} <= cited
    by_source = {(str(r.source), s) for r in to_methods for s in r.sections}
    assert ("workflow/scripts/alliance/models/config.py", "5.3") in by_source  # "section 5, item 3"
    assert any(r.text.startswith("methods section") for r in to_methods)  # no .md
    assert any(r.name == "wai_cwt" for r in REFERENCES)
    assert any(r.target == Path("docs/engines.md") for r in REFERENCES)


def test_every_reference_names_an_existing_file_section_anchor_or_name():
    problems = reference_problems(REFERENCES, ROOT)
    assert not problems, "broken references:\n" + "\n".join(problems)


#: the topic of each section the code cites by number: renumbering docs/methods.md would
#: silently point those references elsewhere
CITED_TOPICS = {
    "1": "benchmark",
    "2": "data model",
    "3": "instrument",
    "4": "centring",
    "5": "model suite",
    "5.1": "variance split",
    "5.2": "same-session",
    "5.3": "lagged",
    "5.4": "three levels",
    "5.5": "early alliance",
    "5.6": "moderation",
    "5.7": "ri-clpm",
    "6": "effect size",
    "7": "safeguards",
    "8": "reviewer",
}


def test_cited_sections_keep_their_topics():
    doc = read_document(ROOT / METHODS)
    titles = {NUMBERED.match(t)["number"]: t.lower() for _, t, _ in doc.headings if NUMBERED.match(t)}
    wrong = {n: titles.get(n) for n, topic in CITED_TOPICS.items() if topic not in (titles.get(n) or "")}
    assert not wrong, f"sections whose heading no longer names the cited topic: {wrong}"


@pytest.mark.parametrize("path", configs_with_models(), ids=lambda p: p.name)
def test_every_model_of_a_shipped_config_has_an_entry(path):
    models = yaml.safe_load(path.read_text())["models"]
    problems = model_entry_problems(read_document(ROOT / METHODS), models, formulas=False)
    assert not problems, "\n".join(problems)


def test_model_entries_show_the_fitted_formula_and_equations():
    models = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["models"]
    problems = model_entry_problems(read_document(ROOT / METHODS), models, formulas=True)
    assert not problems, "\n".join(problems)


def test_docs_index_lists_every_document():
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    documents = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.name != "README.md"]
    unlisted = [name for name in documents if f"({name})" not in index]
    assert not unlisted, f"docs/README.md does not link {unlisted}"


# --------------------------------------------------------------------------- the checkers can fail


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


METHODS_STUB = """# Methods

## 1. Data

### 1.1 Centring

wai_pm is the patient mean.

#### `m_one`

Level 1 ...
"""


def test_broken_references_are_reported(tmp_path):
    # line 1 is fine; every other line has one broken reference (line 8: section 1.2 of "items 1-2")
    code = """# methods.md §1.1 and methods.md section 1 exist
# methods.md §2 is not there
# methods.md section 1, item 2 is not there either
# see docs/missing.md
# methods.md#1-data exists, methods.md#nope does not
# (methods wai_pm) is defined, (methods wai_xx) is not
# methods section 9
# methods.md section 1 (items 1-2)
# methods.md s.4
"""
    root = _tree(
        tmp_path,
        {
            "docs/methods.md": METHODS_STUB,
            "workflow/x.py": code,
            "docs/README.md": "[methods](methods.md) [gone](gone.md) [top](#nowhere)\n",
        },
    )
    problems = reference_problems(find_references(root), root)
    expected = [
        ("workflow/x.py:2", "no section 2"),
        ("workflow/x.py:3", "no section 1.2"),
        ("workflow/x.py:4", "docs/missing.md does not exist"),
        ("workflow/x.py:5", "no anchor #nope"),
        ("workflow/x.py:6", "does not define wai_xx"),
        ("workflow/x.py:7", "no section 9"),
        ("workflow/x.py:8", "no section 1.2"),
        ("workflow/x.py:9", "no section 4"),
        ("docs/README.md:1", "gone.md does not exist"),
        ("docs/README.md:1", "no anchor #nowhere"),
    ]
    for where, what in expected:
        assert any(p.startswith(where) and what in p for p in problems), (where, what, problems)
    assert len(problems) == len(expected), problems


def test_missing_model_entries_and_formulas_are_reported(tmp_path):
    doc = read_document(_tree(tmp_path, {"methods.md": METHODS_STUB}) / "methods.md")
    models = [
        {"name": "m_one", "outcome": "y", "fixed": ["x"], "random": [{"group": "patient"}]},
        {"name": "m_two", "outcome": "y", "fixed": [], "random": [{"group": "patient"}]},
    ]
    assert model_entry_problems(doc, models, formulas=False) == ["model 'm_two' has no entry (a heading with `m_two`)"]
    problems = model_entry_problems(doc, models, formulas=True)
    assert problems[0] == "model 'm_one': its entry does not show the fitted formula y ~ x + (1 | patient)"
    assert len(problems) == 2
