#!/usr/bin/env bash
# The store fault "readonly" at run time: see tests/reliability/store_fault.sh.
exec bash "$(dirname "$0")/../reliability/store_fault.sh" readonly
