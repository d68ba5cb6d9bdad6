#!/usr/bin/env bash
# Install bubblewrap, the sandbox afr runs candidate code in, when it is missing and we can:
# as root with apt-get (Debian/Ubuntu). Otherwise say how; afr still runs without it, and
# records `sandbox: none` (see the README's security section).
set -uo pipefail
if command -v bwrap >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing bubblewrap (the candidate sandbox)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; } >/dev/null 2>&1 \
    && exit 0
fi
echo "note: bubblewrap is not installed; candidates run without a sandbox." >&2
echo "      install it with: sudo apt-get install bubblewrap   (or your distribution's package)" >&2
exit 0
