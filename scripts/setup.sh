#!/usr/bin/env bash
# Set up a development environment from nothing: system packages, .venv, NovaCron with extras.
#
# Sourced by scripts/test.sh and scripts/demo.sh so that each README command does all of its own
# set-up. Idempotent: a second run only checks. System packages are installed with apt-get when
# missing and we are root (or have password-less sudo); otherwise we say what to install.
set -euo pipefail

NOVACRON_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NOVACRON_VENV:-$NOVACRON_ROOT/.venv}"
PY="${PYTHON:-python3}"

# name-of-debian-package:file-that-proves-it-is-there
# libgmp-dev: py-libp2p depends on fastecdsa, which compiles against GMP when no wheel fits.
# swtpm, swtpm-tools, tpm2-tools: the attestation tests run a real software TPM.
# chromium, chromium-driver: the web page test opens the owner's page in a real headless browser.
# nftables, iproute2: `testnet up --wan` (NAT routers, partitions, the redirect to its delay relay).
NOVACRON_APT_PACKAGES="${NOVACRON_APT_PACKAGES:-libgmp-dev:/usr/include/gmp.h libgmp-dev:/usr/include/x86_64-linux-gnu/gmp.h swtpm:/usr/bin/swtpm swtpm-tools:/usr/bin/swtpm_setup tpm2-tools:/usr/bin/tpm2_quote chromium:/usr/bin/chromium chromium-driver:/usr/bin/chromedriver nftables:/usr/sbin/nft iproute2:/usr/sbin/ip}"

_apt_missing=()
_seen=""
for entry in $NOVACRON_APT_PACKAGES; do
    pkg="${entry%%:*}"; probe="${entry#*:}"
    case " $_seen " in *" $pkg "*) continue ;; esac
    if dpkg -s "$pkg" >/dev/null 2>&1 || [ -e "$probe" ]; then _seen="$_seen $pkg"; continue; fi
    _apt_missing+=("$pkg"); _seen="$_seen $pkg"
done
if [ ${#_apt_missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
    if [ "$SUDO" = none ]; then
        echo "setup: please install these Debian packages, then run again: ${_apt_missing[*]}" >&2
    else
        echo "setup: installing system packages: ${_apt_missing[*]}" >&2
        # A failed install is reported, not fatal: the tests that need a package say so.
        if ! { $SUDO apt-get update -qq >/dev/null &&
               DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${_apt_missing[@]}" >/dev/null; }; then
            echo "setup: could not install ${_apt_missing[*]}; tests that need them will say so" >&2
        fi
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV" >&2
    "$PY" -m venv "$VENV"
fi
# Reinstall only when pyproject.toml changed since the last successful install.
stamp="$VENV/.novacron-installed"
if [ ! -f "$stamp" ] || [ "$NOVACRON_ROOT/pyproject.toml" -nt "$stamp" ]; then
    echo "setup: installing NovaCron and its test extra into $VENV" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$NOVACRON_ROOT[test]" 2>&1 \
        | grep -v "^WARNING: Location" >&2 || true
    "$VENV/bin/python" -c "import trio, libp2p, msgpack, nacl, zstandard, numpy, wasmtime, cryptography, h11, prometheus_client, pytest, hypothesis, mypy" \
        || { echo "setup: dependency install failed (see pip output above)" >&2; exit 1; }
    touch "$stamp"
fi
# The Python runtime's interpreter (CPython for WASI with numpy, pinned by SHA-256): fetched once
# per machine into the shared cache; compiled on first use (the tests' python_cache fixture, or a
# daemon in the background). Idempotent: files already there are only checked.
if [ "${NOVACRON_SKIP_PYTHON:-0}" != 1 ]; then
    (cd "$NOVACRON_ROOT" && "$VENV/bin/python" -m daemon.runtime.interpreter fetch >/dev/null) \
        || echo "setup: could not fetch the Python runtime's interpreter; Python tasks will say so" >&2
fi
export PATH="$VENV/bin:$PATH"
