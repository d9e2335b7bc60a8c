"""The two install routes (pyproject.toml for the Makefile's venv, environment.yml for conda) must agree."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _split_pin(spec: str) -> tuple[str, str]:
    name, _, version = re.split(r"(==|=)", spec.strip(), maxsplit=1)
    return name.strip().lower().replace("_", "-"), version.strip()


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs += extra
    return dict(_split_pin(s) for s in specs)


def environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pins: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pins.update(_split_pin(s) for s in dep["pip"])
        elif dep != "pip" and not dep.startswith("python="):
            name, version = _split_pin(dep)
            pins[name] = version
    return pins


def test_environment_yml_and_pyproject_pin_the_same_packages_and_versions():
    assert environment_pins() == pyproject_pins()


def test_torch_and_torchvision_are_pinned_to_the_local_wheels():
    pins = pyproject_pins()
    assert pins["torch"] == "2.14.1"
    assert pins["torchvision"] == "0.29.1"


def test_environment_yml_targets_python_311_on_conda_forge():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    assert "python=3.11" in env["dependencies"]
