"""The conda environment, the pip lock and pyproject.toml name the same packages and versions."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-r")):
            name, version = line.split("==")
            pins[_norm(name)] = version
    return pins


def _conda() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):  # the pip: subsection, pinned with ==
            for pip_dep in dep["pip"]:
                name, version = pip_dep.split("==")
                out[_norm(name)] = version
        elif dep != "pip":
            name, version = dep.split("=", 1)
            out[_norm(name)] = version
    return out


def test_conda_pins_equal_pip_lock():
    conda = _conda()
    pip = _pins(ROOT / "requirements/run.txt") | _pins(ROOT / "requirements/test.txt")
    assert conda.pop("python") == "3.11"
    mismatched = {n: (v, pip.get(n)) for n, v in conda.items() if pip.get(n) != v}
    assert mismatched == {}


def test_every_direct_dependency_is_in_both_lists():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = {_norm(Requirement(r).name): Requirement(r) for r in project["dependencies"]}
    direct |= {_norm(Requirement(r).name): Requirement(r) for r in project["optional-dependencies"]["test"]}
    conda = _conda()
    pip = _pins(ROOT / "requirements/run.txt") | _pins(ROOT / "requirements/test.txt")
    assert sorted(set(direct) - set(conda)) == []
    for name, requirement in direct.items():
        assert pip[name] in requirement.specifier, (name, pip[name], str(requirement.specifier))
