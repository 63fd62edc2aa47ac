"""``make init``'s drafts in tests: the demos' exports, drafting one, and filling in its marked keys.

``DEMO_EXPORTS`` names each demo's raw files and its shipped config; :func:`draft` runs
``python -m alliance.intake.draft_config`` (in process, from the repository root) and
:func:`fill_marked` fills the keys the draft left null from the shipped config, as a lab would:
the shipped value where the shipped config has the key, the key deleted where it has none (a
design without therapists has no ``dataset.columns.therapist``).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import yaml

from testkit import ROOT

#: demo -> (sessions file, patients file, shipped config), paths relative to the repository
DEMO_EXPORTS = {
    "demo": ("data/raw/demo/sessions.csv", "data/raw/demo/patients.csv", "config/config.yaml"),
    "demo_lab2": ("data/raw/demo_lab2/therapy_sessions.csv", "data/raw/demo_lab2/clients.csv", "config/demo_lab2.yaml"),
    "demo_spss": ("data/raw/demo_spss/sessions.sav", "data/raw/demo_spss/patients.sav", "config/demo_spss.yaml"),
    "demo_clientdesign": (
        "data/raw/demo_clientdesign/sessions.csv",
        "data/raw/demo_clientdesign/clients.csv",
        "config/demo_clientdesign.yaml",
    ),
    "demo_notherapist": (
        "data/raw/demo_notherapist/sessions.csv",
        "data/raw/demo_notherapist/patients.csv",
        "config/demo_notherapist.yaml",
    ),
}


def draft(demo: str, out: Path) -> tuple[str, dict]:
    """The draft config of a demo's export, written to ``out``: (its text, the loaded YAML)."""
    from alliance.intake.draft_config import main

    sessions, patients, _ = DEMO_EXPORTS[demo]
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        code = main([sessions, "--patients", patients, "--out", str(out), "--models-from", "config/config.yaml"])
    finally:
        os.chdir(cwd)
    assert code == 0
    text = out.read_text(encoding="utf-8")
    return text, yaml.safe_load(text)


def shipped_config(demo: str) -> dict:
    """The demo's own config, as shipped."""
    return yaml.safe_load((ROOT / DEMO_EXPORTS[demo][2]).read_text(encoding="utf-8"))


def fill_marked(config: dict, shipped: dict, keys: list[str]) -> dict:
    """``config`` with each dotted key of ``keys`` set to the shipped config's value (or removed
    when the shipped config has no such key); nothing else changed."""
    filled = copy.deepcopy(config)
    for key in keys:
        *parents, last = key.split(".")
        target, source = filled, shipped
        for part in parents:
            target = target[part]
            source = (source or {}).get(part) if isinstance(source, dict) else None
        if isinstance(source, dict) and last in source:
            target[last] = copy.deepcopy(source[last])
        else:
            del target[last]
    return filled
