"""docs/engine.md's tree of the package names files that exist, and lists every module."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "gcdance"
NAME = re.compile(r"(?<![\w.])[A-Za-z_][\w*]*(?:\.py|\.so|/)(?![\w.])")


def _tree() -> dict[str, set[str]]:
    """Folder ('' for the package root) -> the names the tree lists in it. A line indented by
    two spaces starts a top-level entry: its leading ``name/`` tokens are top-level folders (the
    last one holds the files that follow); deeper lines continue the entry above."""
    text = (ROOT / "docs" / "engine.md").read_text(encoding="utf-8")
    block = text.split("Inside `python/gcdance/`", 1)[1].split("```", 2)[1]
    listed: dict[str, set[str]] = {"": set()}
    folder = ""
    for line in block.splitlines()[2:]:  # [0]: the fence's language, [1]: "gcdance/"
        names = NAME.findall(line)
        if line.startswith("  ") and not line.startswith("   ") and names:
            folder = ""
            while names and names[0].endswith("/"):
                folder = names.pop(0).rstrip("/")
                listed[""].add(folder + "/")
                listed.setdefault(folder, set())
        listed.setdefault(folder, set()).update(names)
    return listed


def test_every_listed_name_exists() -> None:
    import importlib.util

    # The native module is built at install time: it is where the import finds it (the
    # installed package in a clean clone; site-packages beside an editable install's sources).
    spec = importlib.util.find_spec("gcdance._engine")
    roots = (PACKAGE, *([Path(spec.origin).resolve().parent] if spec and spec.origin else []))
    missing = [f"{folder}/{name}" for folder, names in _tree().items() for name in names
               if not any(list((r / folder).glob(name.rstrip("/"))) for r in roots)]
    assert not missing, f"docs/engine.md lists what does not exist: {missing}"


def test_every_module_is_listed() -> None:
    tree = _tree()
    unlisted = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if len(parts) == 1:
            ok = parts[0] in tree[""]
        else:  # a subpackage: listed, and its direct modules too when the tree names any
            names = tree.get(parts[0])
            ok = names is not None and (
                len(parts) > 2 or not names or parts[1] == "__init__.py"
                or parts[1] in names)
        if not ok:
            unlisted.append("/".join(parts))
    assert not unlisted, f"modules missing from docs/engine.md's tree: {unlisted}"
