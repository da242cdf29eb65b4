#!/usr/bin/env bash
# kill -9 under load, short form (10 rounds): see tests/reliability/crash.sh.
# The long form (>= 50 rounds) runs from scripts/reliability.sh.
exec bash "$(dirname "$0")/../reliability/crash.sh" "${WBMB_CRASH_ROUNDS:-10}"
