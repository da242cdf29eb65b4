#!/usr/bin/env bash
# deps-browser.sh - what the browser test of the web page needs: Debian's
# chromium (apt; Playwright never downloads a browser) and playwright-core
# from npm into tests/browser/node_modules (pinned by package-lock.json).
# Idempotent: quick when everything is present. Run as root or with sudo.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

missing=()
for p in chromium nodejs npm; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        # node/npm may come from elsewhere (nodesource): accept them on PATH
        case $p in
        nodejs) command -v node >/dev/null && continue ;;
        npm) command -v npm >/dev/null && continue ;;
        esac
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps-browser.sh: installing ${missing[*]}" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "deps-browser.sh: run as root to install ${missing[*]}" >&2; exit 1; }
        SUDO=sudo
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cd "$ROOT/tests/browser"
if [ ! -f node_modules/playwright-core/package.json ]; then
    # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: belt and braces, playwright-core has no
    # install script, but never fetch a browser whatever the version does.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi
