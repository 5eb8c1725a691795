#!/usr/bin/env bash
# Fetch ONNX Runtime's C/C++ headers from Debian's libonnxruntime-dev package, without installing it.
#
#   tools/fetch_ort_headers.sh DEST_DIR
#
# Uses apt with a private configuration (its own sources list, lists and cache directories) that
# names the mirror this machine already has configured. On Debian 12 (bookworm) and older the
# package comes from Debian 13 (trixie), where it first appears; on newer releases from the
# machine's own release. The .deb is unpacked with dpkg-deb into DEST_DIR; nothing is installed
# system-wide. Prints the include directory (the one holding onnxruntime_cxx_api.h) on success.
set -euo pipefail

dest=${1:?usage: fetch_ort_headers.sh DEST_DIR}
die() { echo "fetch_ort_headers: $*" >&2; exit 1; }

[ -r /etc/os-release ] || die "no /etc/os-release: not a Debian system"
# shellcheck disable=SC1091
. /etc/os-release
case " ${ID:-} ${ID_LIKE:-} " in
  *" debian "*) ;;
  *) die "this is ${PRETTY_NAME:-an unknown system}, not Debian: install ONNX Runtime headers yourself" ;;
esac
command -v apt-get >/dev/null || die "apt-get not found"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"

codename=${VERSION_CODENAME:-}
case "$codename" in
  ""|buster|bullseye|bookworm) suite=trixie ;;
  *) suite=$codename ;;
esac

# The first Debian archive mirror this machine is configured with (deb822 .sources or one-line
# .list), skipping the security archive; deb.debian.org when none is found.
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -r "$f" ] || continue
  mirror=$(awk 'tolower($1)=="uris:" { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ]; then
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    mirror=$(awk '$1=="deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) { print $i; exit } else break } }' "$f")
    [ -n "$mirror" ] && break
  done
fi
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
# Verify with Debian's archive keyring where it is installed (Debian 13 ships it as .pgp).
signed=""
for key in /usr/share/keyrings/debian-archive-keyring.pgp /usr/share/keyrings/debian-archive-keyring.gpg; do
  if [ -r "$key" ]; then signed="[signed-by=$key] "; break; fi
done
echo "deb ${signed}$mirror $suite main" >"$work/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
  -o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=/dev/null"
  -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)"
  -o "Acquire::Retries=1" -o "Acquire::http::Timeout=30" -o "Acquire::https::Timeout=30"
  -o "Acquire::Languages=none" -q
)
echo "fetch_ort_headers: libonnxruntime-dev from $mirror ($suite)" >&2
apt-get "${apt_opts[@]}" update >&2 || die "apt-get update from $mirror ($suite) failed"
(cd "$work" && apt-get "${apt_opts[@]}" download libonnxruntime-dev >&2) \
  || die "libonnxruntime-dev is not available from $mirror ($suite)"
deb=$(ls "$work"/libonnxruntime-dev_*.deb)
mkdir -p "$dest"
dpkg-deb -x "$deb" "$dest"
inc="$dest/usr/include/onnxruntime"
[ -f "$inc/onnxruntime_cxx_api.h" ] || die "$deb did not contain onnxruntime_cxx_api.h"
basename "$deb" >"$dest/SOURCE"
echo "$inc"
