"""dvc.yaml hashes all the code each stage runs: its deps are its script's import closure."""

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "instrclf"


def stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path:
    """``instrclf.sources.soundfont`` -> its file (package ``__init__.py`` or module ``.py``)."""
    path = ROOT.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imported_modules(path: Path, *, package: str | None) -> set:
    """Project modules a file imports anywhere in it (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                # keep the longest prefix that is a module of the project
                parts = name.split(".")
                while parts and not module_file(".".join(parts)).is_file():
                    parts.pop()
                if parts:
                    found.add(".".join(parts))
    return found


def closure(script: Path) -> set:
    """Every project module a stage script runs: its imports, theirs, and each parent package."""
    todo = imported_modules(script, package=None)
    seen = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo |= {".".join(parts[:i]) for i in range(1, len(parts))}  # parents' __init__ run first
        path = module_file(name)
        package = name if path.name == "__init__.py" else ".".join(parts[:-1])
        todo |= imported_modules(path, package=package) - seen
    return {module_file(n).relative_to(ROOT).as_posix() for n in seen}


def covered(path: str, deps: list) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name", sorted(stages()))
def test_deps_list_every_module_the_stage_imports(name):
    stage = stages()[name]
    script = re.search(r"python (stages/\S+\.py)", stage["cmd"]).group(1)
    deps = [d for d in stage["deps"] if isinstance(d, str)]
    assert script in deps
    needed = closure(ROOT / script)
    missing = sorted(p for p in needed if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {name} runs {missing} but does not list them in deps"
    listed = {d for d in deps if d.startswith(PACKAGE + "/")}
    unused = sorted(d for d in listed if not any(covered(p, [d]) for p in needed))
    assert not unused, f"dvc.yaml stage {name} lists {unused}, which its script never imports"


def test_closure_follows_imports_inside_functions_and_relative_ones():
    needed = closure(ROOT / "stages/train.py")
    assert "instrclf/train.py" in needed  # imported inside main()
    assert "instrclf/tinysol.py" in needed  # only through settings' relative import
    assert "instrclf/__init__.py" in needed


def test_download_deps_list_the_default_libraries():
    from instrclf import settings
    from instrclf.sources.soundfont import libraries

    params = settings.load(ROOT / "params.yaml")
    names = settings.section(params, settings.SoundfontSettings).libraries
    deps = stages()["download"]["deps"]
    for library in libraries.resolve(names, check=False):
        assert str(library.path) in deps, f"dvc.yaml download must list {library.path} ({library.name})"
