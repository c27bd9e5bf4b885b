"""Code fingerprints: which package modules a command runs, derived from the package's own import graph.

A rule's ``params: code=code_fingerprint("encode")`` changes exactly when a file that ``brainalign encode``
imports changes, so Snakemake's ``params`` rerun trigger reruns the jobs whose code was edited (and what
follows them) and nothing else. The modules are found statically: every ``import`` / ``from ... import``
statement of a module (at the top or inside functions, since stages import lazily), relative imports
resolved, followed transitively within the package. Importing a module also runs its parent packages'
``__init__.py`` (and with them their re-exports), so those are followed too. The dispatcher
``brainalign.cli`` only routes to a command module and is not part of any fingerprint.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

#: the installed package (``src/brainalign``); in a copy of the repository, that copy's package
PACKAGE_ROOT = Path(__file__).resolve().parents[1]

_PARSED: dict[tuple[str, int, int], frozenset] = {}


def module_file(module: str, root: Path = PACKAGE_ROOT) -> Path | None:
    """Source file of a module of the package at ``root`` (``pkg.a.b`` -> ``a/b.py`` or ``a/b/__init__.py``),
    or None when the package has no such module."""
    parts = module.split(".")
    if parts[0] != root.name:
        return None
    base = root.joinpath(*parts[1:])
    for path in (base / "__init__.py", base.with_suffix(".py") if len(parts) > 1 else None):
        if path is not None and path.is_file():
            return path
    return None


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def direct_imports(module: str, root: Path = PACKAGE_ROOT) -> frozenset:
    """Modules of the package that ``module``'s source imports anywhere in its body, with their parent packages.

    ``from .x import name`` counts ``x`` (and ``x.name`` when that is a submodule); names that are not
    modules are attributes of ``x``, whose own imports :func:`module_closure` follows.
    """
    path = module_file(module, root)
    if path is None:
        raise ValueError(f"{module} is not a module of the package at {root}")
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _PARSED:
        _PARSED[key] = frozenset(_parse_imports(module, path, root))
    return _PARSED[key]


def _parse_imports(module: str, path: Path, root: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
    found = set()
    for name in names:
        if module_file(name, root) is not None:
            found.add(name)
            found.update(_parents(name))
    found.discard(module)
    return found


def module_closure(module: str, root: Path = PACKAGE_ROOT) -> list[str]:
    """``module``, its parent packages and every package module they import, transitively; sorted."""
    seen, todo = set(), [*_parents(module), module]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(direct_imports(name, root) - seen)
    return sorted(seen)


def command_module(command: str) -> str:
    """The module that runs a ``brainalign`` command (``"encode"`` -> ``brainalign.encoding.cli``)."""
    from ..cli import COMMANDS

    if command not in COMMANDS:
        raise ValueError(f"unknown brainalign command {command!r} (one of {', '.join(COMMANDS)})")
    return COMMANDS[command][0]


def command_files(command: str, root: Path = PACKAGE_ROOT) -> list[Path]:
    """Source files a command runs (:func:`module_closure` of its module), sorted."""
    module = command_module(command)
    module = ".".join([root.name, *module.split(".")[1:]])
    return sorted(module_file(m, root) for m in module_closure(module, root))


def code_fingerprint(command: str, root: Path = PACKAGE_ROOT) -> str:
    """Hash of the package source files a ``brainalign`` command imports.

    Used as a rule's ``params: code=...`` so that Snakemake's ``params`` rerun trigger fires when the code
    a job runs changes, not only when the rule text does.

    Parameters
    ----------
    command : str
        A ``brainalign`` command (``"encode"``, ``"rsa"``, ``"train"``, ...; ``brainalign.cli.COMMANDS``).
    root : Path
        The package directory (default: the imported package).

    Returns
    -------
    str
        First 16 hex digits of a SHA-256 over the files' paths (relative to ``root``) and contents.
    """
    h = hashlib.sha256()
    for path in command_files(command, root):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
