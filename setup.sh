#!/usr/bin/env bash
# Install whatever is missing on a Debian machine (as root), then run the demo or the tests.
#
#   ./setup.sh demo     # set up, then run the main demo
#   ./setup.sh test     # set up, then run the whole test suite
#   ./setup.sh          # set up only
#
# Idempotent: apt packages (the platform's, and those the built-in tasks declare in their
# task.toml's [requires] apt) are installed only when missing, the virtualenv (.venv) is
# created once and refreshed only when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(iproute2 nftables bubblewrap faketime procps python3 python3-venv ca-certificates tmux)

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh needs root (apt-get, network namespaces, cgroups): run it with sudo" >&2
    exit 1
fi

# Install Debian packages with nothing started by their own service scripts: a
# policy-rc.d that exits 101 (Debian's "action forbidden") for the length of the install,
# then any process the install started from one of the packages' files is stopped.
apt_install() {
    local policy=/usr/sbin/policy-rc.d saved="" before pid exe files
    if [ -e "$policy" ]; then saved="$(mktemp)"; cp -p "$policy" "$saved"; fi
    # shellcheck disable=SC2064
    trap "if [ -n '$saved' ]; then mv -f '$saved' '$policy'; else rm -f '$policy'; fi" EXIT
    printf '#!/bin/sh\n# infragym setup.sh: start no service during the install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    before=" $(cd /proc && echo [0-9]*) "
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi
    trap - EXIT
    # a daemon started anyway (by a maintainer script that ignores policy-rc.d)
    files="$(dpkg -L "$@" 2>/dev/null | sort -u)"
    for pid in $(cd /proc && echo [0-9]*); do
        case "$before" in *" $pid "*) continue ;; esac
        exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || continue
        if grep -qxF -- "$exe" <<<"$files"; then
            log "stopping $exe (pid $pid), started by the install"
            kill "$pid" 2>/dev/null || true
        fi
    done
}

missing_of() {  # the packages among "$@" that dpkg does not list as installed
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

# the tests open the HTML report in a real browser (headless, no network)
[ "${1:-}" != test ] || APT_PACKAGES+=(chromium)

mapfile -t missing < <(missing_of "${APT_PACKAGES[@]}")
if [ ${#missing[@]} -gt 0 ]; then
    log "installing apt packages: ${missing[*]}"
    apt_install "${missing[@]}"
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

# the Debian packages the built-in tasks' hosts need ([requires] apt in each task.toml),
# and for the tests also those of the task folders under tests/tasks/
TASK_DIRS=(src/infragym/tasks/builtin)
[ "${1:-}" != test ] || TASK_DIRS+=(tests/tasks)
mapfile -t TASK_PACKAGES < <("$PY" - "${TASK_DIRS[@]}" <<'PYEOF'
import pathlib, sys, tomllib
seen = {}
for toml in sorted(p for d in sys.argv[1:] for p in pathlib.Path(d).glob("*/task.toml")):
    apt = tomllib.loads(toml.read_text(encoding="utf-8")).get("requires", {}).get("apt", [])
    seen.update(dict.fromkeys(apt))
if seen:
    print("\n".join(seen))
PYEOF
)
mapfile -t missing < <(missing_of "${TASK_PACKAGES[@]}")
if [ ${#missing[@]} -gt 0 ]; then
    log "installing the built-in tasks' packages: ${missing[*]}"
    apt_install "${missing[@]}"
fi

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

# `infragym serve` needs openenv, whose mcp pin (mcp<2, through fastmcp) conflicts with
# that of the dev extra's verifiers: its tests run in a second virtualenv holding
# infragym[openenv] (tests/test_serve_ray.py runs in .venv, which has Ray, and starts its
# servers with this virtualenv's python). It also holds verifiers 0.3.1, pinned: the
# release whose mcp pin (>=1.24,<2) sits beside openenv's and which ships the OpenEnv
# taskset (verifiers.v1.tasksets.openenv) that tests/test_verifiers_openenv.py runs
# against the server. OE_EXTRA is part of the stamp, so changing it rebuilds the venv.
OE_STAMP=.venv-openenv/.infragym-installed
OE_EXTRA=('verifiers==0.3.1')
openenv_venv() {
    local want="$WANT ${OE_EXTRA[*]}"
    if [ ! -x .venv-openenv/bin/python ] || [ "$(cat "$OE_STAMP" 2>/dev/null)" != "$want" ]; then
        log "creating the virtualenv .venv-openenv (infragym[openenv] and ${OE_EXTRA[*]}, for the serve tests)"
        rm -rf .venv-openenv
        "$PY" -m venv .venv-openenv
        .venv-openenv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
        .venv-openenv/bin/python -m pip install -q -e '.[openenv]' "${OE_EXTRA[@]}" 'pytest>=8' \
            'pytest-timeout>=2.2' 2>&1 | grep -v "is ignored" || true
        .venv-openenv/bin/python -c 'import openenv, infragym.serve, verifiers.v1.tasksets.openenv' ||
            { echo "installing infragym[openenv] and ${OE_EXTRA[*]} failed" >&2; exit 1; }
        echo "$want" > "$OE_STAMP"
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
        .venv/bin/python -m pytest -q -p no:randomly --durations=25 "$@"
        rc=$?
        if [ "$rc" -eq 0 ] && [ "$serve_too" -eq 1 ]; then
            log "the serve, remote and verifiers-OpenEnv tests, with openenv (.venv-openenv)"
            .venv-openenv/bin/python -m pytest -q -p no:randomly tests/test_serve.py tests/test_serve_mcp.py \
                tests/test_remote.py tests/test_verifiers_openenv.py \
                "tests/test_operate.py::test_an_openenv_client_gets_each_phase_reward_at_its_step"
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
