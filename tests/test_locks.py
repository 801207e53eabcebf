"""A fresh clone installs what it needs: the lock files hold what pyproject.toml
declares, within its ranges, and every benchmark installs its Node side.

`make run` installs requirements/run.txt and `make test` requirements/test.txt; a
dependency added to pyproject.toml without `make lock` would be missing from a fresh
clone, and a range moved without it would leave the locks outside the tested range.
"""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support import ROOT


def _pins(name: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if not spec:
            continue
        requirement = Requirement(spec)
        (pinned,) = requirement.specifier
        assert pinned.operator == "==", line
        if requirement.marker is None or requirement.marker.evaluate():
            pins[canonicalize_name(requirement.name)] = pinned.version
    return pins


def _declared() -> tuple[list[Requirement], list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [Requirement(r) for r in project["dependencies"]]
    test = [Requirement(r) for r in project["optional-dependencies"]["test"]]
    return runtime, test


def _assert_satisfied(requirements: list[Requirement], pins: dict[str, str], lock: str) -> None:
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in {lock}: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{lock} pins {name}=={pins[name]}, outside pyproject.toml's {requirement}: run `make lock`"
        )


def test_the_locks_pin_every_declared_dependency_within_its_range():
    runtime, test = _declared()
    run_pins, test_pins = _pins("run.txt"), _pins("test.txt")
    _assert_satisfied(runtime, run_pins, "requirements/run.txt")
    _assert_satisfied(runtime + test, test_pins, "requirements/test.txt")
    # Running and testing install the same versions of what they share.
    assert {name: test_pins[name] for name in run_pins} == run_pins
    # `make run` does not install the test toolchain (pytest, ruff, mypy, playwright, ...).
    assert not {canonicalize_name(r.name) for r in test} & set(run_pins)


def test_every_dependency_has_an_upper_bound():
    runtime, test = _declared()
    for requirement in runtime + test:
        assert any(s.operator in ("<", "==", "~=") for s in requirement.specifier), str(requirement)


def test_every_benchmark_installs_its_node_side_on_a_fresh_clone():
    bench = (ROOT / "bench").glob("*.py")
    scripts = [p for p in bench if ".js" in p.read_text() and p.name != "node_deps.py"]
    assert {p.name for p in scripts} >= {"fanout.py", "cluster.py"}
    for script in scripts:
        text = script.read_text()
        assert "from node_deps import ensure_node_deps" in text and "ensure_node_deps()" in text, script
