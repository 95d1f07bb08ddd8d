"""pyproject.toml declares exactly what the code imports: nothing pinned that is never imported,
nothing imported (outside the standard library) that no extra declares."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Imported inside try/except as an optional speed-up or a device-only alternative, never required.
OPTIONAL = {
    "tensorrt": "comes with JetPack on the Jetson, not from PyPI",
    "tflite_runtime": "fallback runtime on devices without ai-edge-litert",
    "zstandard": "extra wire codec in bench when installed",
    "compression": "the standard library's zstd from Python 3.14 on, tried first by bench",
    "triton_python_backend_utils": "provided by Triton's Python backend to the model.py it runs",
}
# Declared for a command-line tool we run, which imports it itself (never imported by our code).
NEEDED_BY_TOOLS = {
    "onnx-graphsurgeon": "`polygraphy check lint` imports onnx_graphsurgeon (tests/backends/test_tensorrt.py)",
    "pytest-xdist": "pytest loads it for `-n auto` (addopts in pyproject.toml); a plugin, never imported",
}


def _imported_modules(folders: list[str]) -> set[str]:
    found, local = set(), set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            local.add(path.stem)
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module.split(".")[0])
    return {m for m in found - local if m not in sys.stdlib_module_names and m not in ("sift_deploy", "tests", "__future__")}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, set[str]]:
    """extra (or "core") -> distribution names."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"core": project["dependencies"], **project["optional-dependencies"]}
    out = {}
    for group, requirements in groups.items():
        names = {_normalise(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in requirements}
        out[group] = {n for n in names if n != "sift-deploy"}
    return out


def _distributions_of(modules: set[str]) -> dict[str, str]:
    mapping = packages_distributions()
    return {m: _normalise(mapping[m][0]) for m in modules if m in mapping}


def test_everything_imported_is_declared():
    declared = set().union(*_declared().values())
    modules = _imported_modules(["sift_deploy", "benchmarks", "tests"]) - set(OPTIONAL)
    distributions = _distributions_of(modules)
    assert modules == set(distributions), f"imported but not installed: {sorted(modules - set(distributions))}"
    undeclared = {m: d for m, d in distributions.items() if d not in declared}
    assert not undeclared, f"imported but declared in no extra of pyproject.toml: {undeclared}"


def test_everything_declared_is_imported():
    imported = set(_distributions_of(_imported_modules(["sift_deploy", "benchmarks", "tests"])).values())
    for group, names in _declared().items():
        unused = names - imported - set(NEEDED_BY_TOOLS)
        assert not unused, f"[{group}] declares {sorted(unused)}, which nothing imports"


def test_tools_we_run_find_what_they_import():
    """A package declared only for a tool must be importable as the tool will import it."""
    import importlib.util

    for distribution in NEEDED_BY_TOOLS:
        module = {"pytest-xdist": "xdist"}.get(distribution, distribution.replace("-", "_"))
        assert importlib.util.find_spec(module) is not None, f"{distribution} is declared but {module} does not import"
