#!/usr/bin/env bash
# Install what loaxa needs on Debian 12 / Raspberry Pi OS bookworm, then the
# project itself into .venv. Safe to run twice.
#
#   scripts/setup.sh             # development and CI: runtime + test extras, a local Mosquitto
#   scripts/setup.sh --station   # a station: the runtime only (no test tools, no local broker)
#   scripts/setup.sh --bench     # development + the benchmark extras (a 61 MB voice, matplotlib)
#   --dry-run                    # say what would be installed, install nothing
set -euo pipefail
cd "$(dirname "$0")/.."

ROLE=dev
DRY=""
for arg in "$@"; do
  case "$arg" in
    --station) ROLE=station ;;
    --bench) ROLE=bench ;;
    --dry-run) DRY=1 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

PACKAGES=(espeak-ng libespeak-ng1 libportaudio2 ffmpeg python3-venv fonts-dejavu-core)  # the font: the log book's PDF
case "$ROLE" in
  station) SPEC="." ;;
  # postgresql: the province server's tests run on a real one too; poppler-utils: the log book's PDF read back;
  # chromium and chromium-driver: the province console's tests run in a real browser
  bench) SPEC=".[test,bench]"; PACKAGES+=(mosquitto mosquitto-clients postgresql poppler-utils chromium chromium-driver) ;;
  *) SPEC=".[test]"; PACKAGES+=(mosquitto mosquitto-clients postgresql poppler-utils chromium chromium-driver) ;;
esac
if [ -n "$DRY" ]; then
  echo "Debian packages: ${PACKAGES[*]}"
  echo "pip install -e $SPEC"
  exit 0
fi

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

if [ "$ROLE" != station ]; then
  # A local broker for `loaxa run --config config/loaxa.example.yaml`.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    $SUDO systemctl enable --now mosquitto >/dev/null 2>&1 || true
  elif ! pgrep -x mosquitto >/dev/null 2>&1; then
    (mosquitto -d -p 1883 >/dev/null 2>&1 || /usr/sbin/mosquitto -d -p 1883 >/dev/null 2>&1) || echo "note: could not start mosquitto"
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e "$SPEC"
# Can this CPU run the neural voice? Asked of a child process (some onnxruntime
# builds die on import on a Pi 4); the verdict is printed, setup goes on either way.
.venv/bin/python -m loaxa doctor --probe-voice || echo "note: the station will speak with espeak-ng until this is fixed"
if [ "$ROLE" = station ]; then
  echo "ready: sudo scripts/install-service.sh"
else
  echo "ready: .venv/bin/loaxa --help"
fi
