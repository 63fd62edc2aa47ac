"""A pooled run's config (workflow/schemas/pooling.schema.yaml): its studies, effects and grid, checked.

The schema has checked every key's type when the workflow loads; :func:`check_pooling_config` adds
what a schema cannot say (names unique, a window the RI-CLPM can use, each study's own
cross-references as the single-study intake checks them), and the other functions give the rules
what they iterate over. Nothing here is evaluated: studies, effects and choices are names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alliance.intake.config import ConfigError, check_dataset_config
from alliance.pooling.specifications import POOLED_EFFECTS, expand_grid, specification_id

__all__ = [
    "study_configs",
    "check_pooling_config",
    "study_raw_inputs",
    "pooled_effect_names",
    "multiverse_specifications",
    "window",
]


def study_configs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each study as a single-study config's blocks (``dataset`` named after the study), by name, in config order."""
    out = {}
    for study in config["studies"]:
        dataset = {**study["dataset"], "name": study["name"]}
        out[study["name"]] = {
            "name": study["name"],
            "label": study.get("label", study["name"]),
            "moderators": dict(study.get("moderators") or {}),
            "dataset": dataset,
            "analysis": study["analysis"],
            "cleaning": study.get("cleaning") or {},
            "instruments": study.get("instruments") or {},
        }
    return out


def window(config: dict[str, Any]) -> tuple[int, int]:
    """The session window ``(first, last)``."""
    first, last = config["pooling"]["sessions"]
    return int(first), int(last)


def check_pooling_config(config: dict[str, Any]) -> None:
    """Raise ConfigError on the first mistake the schema cannot see, naming the study it is in.

    >>> check_pooling_config({"pooling": {"sessions": [1, 7], "effects": ["riclpm"]},
    ...                       "studies": [{"name": "a"}, {"name": "a"}]})
    Traceback (most recent call last):
    ...
    alliance.intake.config.ConfigError: studies: the name 'a' is used by more than one study
    """
    names = [s["name"] for s in config["studies"]]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"studies: the name {name!r} is used by more than one study")
    first, last = window(config)
    if last - first + 1 < 3:
        raise ConfigError(f"pooling.sessions: [{first}, {last}] holds fewer than 3 sessions (the RI-CLPM needs 3)")
    if first != 1 and "riclpm" in config["pooling"]["effects"]:
        raise ConfigError(
            f"pooling.sessions: the RI-CLPM's waves are sessions 1..K; the window must start at 1, not {first}"
        )
    truth = config["pooling"].get("truth")
    if truth and not Path(truth).is_file():
        raise ConfigError(f"pooling.truth: {truth} is not a file")
    for name, study in study_configs(config).items():
        try:
            check_dataset_config(study["dataset"], study["analysis"], study["cleaning"], study["instruments"])
        except ConfigError as error:
            raise ConfigError(f"studies.{name}: {error}") from None
    moderators = [set(s["moderators"]) for s in study_configs(config).values()]
    if moderators and any(m != moderators[0] for m in moderators):
        raise ConfigError("studies: every study must name the same moderators (the meta-regression needs each for all)")


def study_raw_inputs(study: dict[str, Any]) -> dict[str, str]:
    """A study's raw files (never written to)."""
    files = {"sessions": study["dataset"]["sessions"]["path"]}
    if study["dataset"].get("patients"):
        files["patients"] = study["dataset"]["patients"]["path"]
    return files


def pooled_effect_names(config: dict[str, Any]) -> list[str]:
    """The pooled effects of the run, in the order of ``pooling.effects``.

    >>> pooled_effect_names({"pooling": {"effects": ["riclpm", "same_session"]}})
    ['riclpm_alliance_symptoms', 'riclpm_symptoms_alliance', 'same_session']
    """
    return [name for model in config["pooling"]["effects"] for name in POOLED_EFFECTS[model]]


def multiverse_specifications(config: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The multiverse's specifications by id (none without a ``multiverse`` block)."""
    grid = config.get("multiverse")
    if not grid:
        return {}
    choices = {k: v for k, v in grid.items() if k != "winsor_sd"}
    return {specification_id(c): c for c in expand_grid(choices)}
