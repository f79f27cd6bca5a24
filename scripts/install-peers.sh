#!/usr/bin/env bash
# Install the real peers the integration tier runs against, if any is missing.
# Quiet and a no-op when everything is present; needs root to install.
set -euo pipefail

# package:binary — the binary proves the package is usable.
PEERS=(
  "sip-tester:sipp"
  "baresip-core:baresip"
  "kamailio:kamailio"
  "tshark:tshark"
  "sox:sox"
  "espeak-ng:espeak-ng"
  "mosquitto:mosquitto"
  "mosquitto-clients:mosquitto_pub"
  "postgresql:initdb"
  "prometheus:prometheus"
  "chromium:chromium"
  # Chinese text in the pages' screenshots: without a CJK font it renders as boxes.
  "fonts-wqy-zenhei:/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
)

have() {
  # A path proves a package of data files (a font); the rest are commands.
  case "$1" in /*) [ -e "$1" ]; return ;; esac
  # kamailio and mosquitto live in sbin, initdb in the versioned postgres bin dir.
  command -v "$1" >/dev/null 2>&1 && return 0
  [ -x "/usr/sbin/$1" ] && return 0
  compgen -G "/usr/lib/postgresql/*/bin/$1" >/dev/null 2>&1 && return 0
  return 1
}

missing=()
for entry in "${PEERS[@]}"; do
  package="${entry%%:*}"
  binary="${entry#*:}"
  have "$binary" || missing+=("$package")
done

[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-peers: missing packages: ${missing[*]}" >&2
  echo "install-peers: run as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

still=()
for entry in "${PEERS[@]}"; do
  have "${entry#*:}" || still+=("${entry%%:*}")
done
if [ "${#still[@]}" -ne 0 ]; then
  echo "install-peers: installed but still missing: ${still[*]}" >&2
  exit 1
fi
