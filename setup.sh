#!/usr/bin/env bash
# Install whatever is missing on a Debian machine (as root), then run the demo or the tests.
#
#   ./setup.sh demo     # set up, then run the main demo
#   ./setup.sh test     # set up, then run the whole test suite
#   ./setup.sh          # set up only
#
# Idempotent: apt packages are installed only when missing, the virtualenv (.venv) is
# created once and refreshed only when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(iproute2 nftables bubblewrap faketime procps python3 python3-venv ca-certificates tmux)

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh needs root (apt-get, network namespaces, cgroups): run it with sudo" >&2
    exit 1
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# the newest python3 >= 3.11 on PATH (a pyenv one if present, else Debian's)
PY=""
for cand in python3.13 python3.12 python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        PY="$(command -v "$cand")"; break
    fi
done
[ -n "$PY" ] || { echo "no Python >= 3.11 with venv found" >&2; exit 1; }

STAMP=.venv/.infragym-installed
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1) $("$PY" -c 'import sys; print(sys.version)' | head -1)"
if [ ! -x .venv/bin/python ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    log "creating the virtualenv .venv with $PY"
    rm -rf .venv
    "$PY" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
    .venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v "is ignored" || true
    .venv/bin/python -c 'import infragym' || { echo "installing infragym failed" >&2; exit 1; }
    echo "$WANT" > "$STAMP"
fi

# `infragym serve` needs openenv, whose mcp pin conflicts with verifiers' (the dev extra):
# its tests run in a second virtualenv holding infragym[openenv] and no verifiers
OE_STAMP=.venv-openenv/.infragym-installed
openenv_venv() {
    if [ ! -x .venv-openenv/bin/python ] || [ "$(cat "$OE_STAMP" 2>/dev/null)" != "$WANT" ]; then
        log "creating the virtualenv .venv-openenv (infragym[openenv], for the serve tests)"
        rm -rf .venv-openenv
        "$PY" -m venv .venv-openenv
        .venv-openenv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
        .venv-openenv/bin/python -m pip install -q -e '.[openenv]' 'pytest>=8' 'pytest-timeout>=2.2' \
            2>&1 | grep -v "is ignored" || true
        .venv-openenv/bin/python -c 'import openenv, infragym.serve' ||
            { echo "installing infragym[openenv] failed" >&2; exit 1; }
        echo "$WANT" > "$OE_STAMP"
    fi
}

case "${1:-}" in
    demo)
        shift
        exec .venv/bin/infragym demo "$@"
        ;;
    test)
        shift
        log "sweeping leftovers of earlier killed runs"
        .venv/bin/infragym cleanup >/dev/null || true
        serve_too=0
        if [ $# -eq 0 ]; then openenv_venv; serve_too=1; fi
        set +e
        .venv/bin/python -m pytest -q -p no:randomly "$@"
        rc=$?
        if [ "$rc" -eq 0 ] && [ "$serve_too" -eq 1 ]; then
            log "the serve tests, with openenv (.venv-openenv)"
            .venv-openenv/bin/python -m pytest -q -p no:randomly tests/test_serve.py
            rc=$?
        fi
        set -e
        if [ "$rc" -eq 5 ]; then
            echo "pytest collected no tests: that is a failure here" >&2
            exit 1
        fi
        exit "$rc"
        ;;
    "") log "ready: .venv/bin/infragym --help" ;;
    *) echo "usage: $0 [demo|test] [args...]" >&2; exit 2 ;;
esac
