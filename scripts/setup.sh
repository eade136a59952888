#!/usr/bin/env bash
# Install what loaxa needs on Debian 12 / Raspberry Pi OS bookworm, then the
# project itself into .venv with its test extras. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(espeak-ng libespeak-ng1 libportaudio2 ffmpeg mosquitto mosquitto-clients python3-venv fonts-dejavu-core poppler-utils)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# A local broker for `loaxa run --config config/loaxa.example.yaml`.
if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
  $SUDO systemctl enable --now mosquitto >/dev/null 2>&1 || true
elif ! pgrep -x mosquitto >/dev/null 2>&1; then
  (mosquitto -d -p 1883 >/dev/null 2>&1 || /usr/sbin/mosquitto -d -p 1883 >/dev/null 2>&1) || echo "note: could not start mosquitto"
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test,bench]"
# Can this CPU run the neural voice? Asked of a child process (some onnxruntime
# builds die on import on a Pi 4); the verdict is printed, setup goes on either way.
.venv/bin/python -m loaxa doctor --probe-voice || echo "note: the station will speak with espeak-ng until this is fixed"
echo "ready: .venv/bin/loaxa --help"
