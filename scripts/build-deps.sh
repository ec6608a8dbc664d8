#!/usr/bin/env bash
# Make sure the optional C extension (cep/_native/prescan.c) can be built: a C compiler and
# the headers of the Python that builds the venv.  On a Debian machine we may administer
# (root, apt-get) missing pieces are installed; anywhere else a note is printed and the
# install goes on without the extension (file mode then decodes every line in Python).
set -uo pipefail
PY="${1:-python3}"
include="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
missing=()
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[ -f "$include/Python.h" ] || missing+=("$("$PY" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}-dev")')")
[ ${#missing[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing ${missing[*]} (apt-get) to build the C line scanner" >&2
    { apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; }; } \
        && exit 0
fi
echo "note: ${missing[*]} missing; cep is installed without its C line scanner (slower file mode)" >&2
exit 0
