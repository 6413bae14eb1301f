#!/usr/bin/env bash
# Print (on stdout, and nothing else) the absolute path of a Chromium binary for the browser
# tests (tests/test_browser_demo.py drives it with playwright-core; `npx playwright install`
# cannot download browsers here).
#
# Order of preference:
#   1. $CHROMIUM_PATH, if set (it must run, else this fails);
#   2. `chromium` / `chromium-browser` on PATH, or /usr/bin/chromium;
#   3. Debian's `chromium` package, installed with apt-get when running as root.
#
# Progress goes to stderr. Exits non-zero with a message when no Chromium can be had: the
# browser tests then fail (they never skip).
set -euo pipefail

log() { printf 'ensure-chromium: %s\n' "$*" >&2; }
die() { printf 'ensure-chromium: ERROR: %s\n' "$*" >&2; exit 1; }

# runs BIN -> success when BIN prints a Chromium version.
runs() {
    local out
    out="$("$1" --version 2>/dev/null)" || return 1
    [[ "$out" == *Chromium* || "$out" == *Chrome* ]]
}

find_chromium() {
    local candidate
    for candidate in "$(command -v chromium 2>/dev/null || true)" \
                     "$(command -v chromium-browser 2>/dev/null || true)" \
                     /usr/bin/chromium; do
        if [[ -n "$candidate" && -x "$candidate" ]] && runs "$candidate"; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

if [[ -n "${CHROMIUM_PATH:-}" ]]; then
    [[ -x "$CHROMIUM_PATH" ]] || die "CHROMIUM_PATH=$CHROMIUM_PATH is not an executable file"
    runs "$CHROMIUM_PATH" || die "CHROMIUM_PATH=$CHROMIUM_PATH does not run (--version failed)"
    printf '%s\n' "$CHROMIUM_PATH"
    exit 0
fi

if find_chromium; then
    exit 0
fi

command -v apt-get >/dev/null 2>&1 \
    || die "no Chromium found and no apt-get to install one: install Chromium and set CHROMIUM_PATH"
[[ "$(id -u)" -eq 0 ]] \
    || die "no Chromium found and not root: run 'sudo apt-get install chromium' or set CHROMIUM_PATH"

export DEBIAN_FRONTEND=noninteractive
# Wait for a dpkg lock held by another apt run (e.g. a parallel install) instead of failing.
apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600)
log "installing Debian's chromium package with apt-get ..."
# Install from the current package lists; refresh them only when that fails.
if ! apt-get install "${apt_opts[@]}" chromium >&2; then
    apt-get -o DPkg::Lock::Timeout=600 update -q >&2 || die "apt-get update failed"
    apt-get install "${apt_opts[@]}" chromium >&2 || die "apt-get install chromium failed"
fi

find_chromium || die "installed the chromium package, but no working chromium binary was found"
