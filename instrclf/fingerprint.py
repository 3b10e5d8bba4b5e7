"""Which project files a stage script runs, and one fingerprint file per stage that hashes them.

Stage ``code`` (the first of dvc.yaml) writes ``code/<script>.sha256`` for each script of
``stages/``, and ``code/<script>-<model>.sha256`` for a script that builds models by name
(its closure reaches :mod:`instrclf.backends`, which imports ``instrclf.backends.<model>``
with ``importlib``). Each file lists, in ``sha256sum``'s format and sorted, the script and
every module of the package it imports, directly or not, also inside functions, with the
packages above them (their ``__init__.py`` runs first). Every other stage depends on its
fingerprint instead of listing its modules, so

- editing a module reruns exactly the stages whose scripts import it (and a model's back end
  only that model's stages), as a module-per-dep list did, but nobody maintains the list:
  an import added to the code is in the fingerprint at the next ``dvc repro``;
- DVC checks one file per stage on every ``dvc status`` instead of about twenty (the no-op
  ``dvc repro`` spent a fifth of its time there), and ``dvc.lock`` is half as long.

``sha256sum -c code/train-conv2d.sha256`` checks a tree against a fingerprint.
"""

import ast
from pathlib import Path

from .io import sha256_of
from .settings import MODEL_NAMES

#: The package whose modules a fingerprint follows (third-party imports are pinned by the set-up).
PACKAGE = "instrclf"

#: Packages that import their submodules by name (``importlib``): each model's back end is
#: ``instrclf.backends.<name>``. A script whose closure reaches one gets a fingerprint per model,
#: each holding that model's module only.
BY_NAME = "instrclf.backends"

#: The folder of stage scripts, and stage code's own script (no stage depends on it).
SCRIPTS, SELF = "stages", "code.py"


def module_file(root: Path, name: str) -> Path:
    """``instrclf.sources.soundfont`` -> its file under ``root`` (``__init__.py`` of a package, or ``.py``)."""
    path = root.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imported_modules(root: Path, path: Path, *, package: str | None) -> set:
    """The project modules ``path`` imports anywhere in it (also inside functions; relative imports
    resolved against ``package``), each the longest dotted prefix that is a module of the project."""
    found = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
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
                parts = name.split(".")
                while parts and not module_file(root, ".".join(parts)).is_file():
                    parts.pop()
                if parts:
                    found.add(".".join(parts))
    return found


def closure(root: Path, script: Path, *, model: str | None = None, memo: dict | None = None) -> list:
    """Every file ``script`` runs, relative to ``root`` and sorted: itself, the project modules it
    imports, theirs, and each parent package; ``model``'s back end where the closure reaches
    :data:`BY_NAME`. ``memo`` keeps each module's imports across calls on an unchanged tree."""
    root, memo = Path(root), {} if memo is None else memo
    todo, seen = imported_modules(root, script, package=None), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo |= {".".join(parts[:i]) for i in range(1, len(parts))}  # parents' __init__ run first
        path = module_file(root, name)
        package = name if path.name == "__init__.py" else ".".join(parts[:-1])
        if name not in memo:
            memo[name] = imported_modules(root, path, package=package)
        todo |= memo[name] - seen
        if name == BY_NAME and model is not None:
            todo.add(f"{BY_NAME}.{model}")
    files = {module_file(root, name).relative_to(root).as_posix() for name in seen}
    return sorted(files | {Path(script).resolve().relative_to(root.resolve()).as_posix()})


def by_model(root: Path, script: Path, *, memo: dict | None = None) -> bool:
    """Whether ``script`` builds models by name (its closure reaches :data:`BY_NAME`)."""
    return module_file(root, BY_NAME).relative_to(root).as_posix() in closure(root, script, memo=memo)


def fingerprints(root: Path) -> dict:
    """``{file name: text}`` for each stage script under ``root`` (``stages/*.py`` but stage code's own):
    ``<stem>.sha256``, or one ``<stem>-<model>.sha256`` per model of :data:`instrclf.settings.MODEL_NAMES`."""
    root, found, memo = Path(root), {}, {}  # each module parsed once
    for script in sorted((root / SCRIPTS).glob("*.py")):
        if script.name == SELF:
            continue
        for model in MODEL_NAMES if by_model(root, script, memo=memo) else [None]:
            files = closure(root, script, model=model, memo=memo)
            lines = [f"{sha256_of(root / f)}  {f}\n" for f in files]
            found[f"{script.stem}-{model}.sha256" if model else f"{script.stem}.sha256"] = "".join(lines)
    return found
