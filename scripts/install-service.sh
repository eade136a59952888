#!/usr/bin/env bash
# Install loaxa as a systemd service on a station, from this checkout (run
# scripts/setup.sh --station first). Safe to run twice: an existing config,
# user or store is kept.
#
#   sudo scripts/install-service.sh            # the station itself
#   scripts/install-service.sh --root DIR      # into a file-system image at DIR (no systemctl)
#
# Creates the `loaxa` system user (groups audio, and gpio where it exists),
# /etc/loaxa/loaxa.yaml from the example (mode 0640, edit the station's slugs
# and broker in it), /var/lib/loaxa (0750), and the unit with ExecStart in
# this folder; then enables and starts it.
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$(pwd)
ROOT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=${2:?--root needs a folder}; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-service.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$HERE/.venv/bin/loaxa" ] || { echo "no $HERE/.venv/bin/loaxa: run scripts/setup.sh --station first" >&2; exit 1; }
if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
  echo "install-service.sh: run it as root (sudo), or with --root DIR" >&2
  exit 1
fi
R=(); [ -n "$ROOT" ] && R=(--root "$(cd "$ROOT" && pwd)")

has_group() { if [ -n "$ROOT" ]; then grep -q "^$1:" "$ROOT/etc/group"; else getent group "$1" >/dev/null; fi; }
has_user() { if [ -n "$ROOT" ]; then grep -q "^$1:" "$ROOT/etc/passwd"; else getent passwd "$1" >/dev/null; fi; }

if ! has_user loaxa; then
  useradd "${R[@]}" --system --user-group --home-dir /var/lib/loaxa --no-create-home --shell /usr/sbin/nologin loaxa
  echo "created the system user loaxa"
fi
groups=(audio)
has_group gpio && groups+=(gpio)
for g in "${groups[@]}"; do
  has_group "$g" || groupadd "${R[@]}" --system "$g"
done
usermod "${R[@]}" --append --groups "$(IFS=,; echo "${groups[*]}")" loaxa
echo "loaxa is in the groups: ${groups[*]}"

install -d -m 0755 "$ROOT/etc/loaxa"
if [ ! -e "$ROOT/etc/loaxa/loaxa.yaml" ]; then
  install -m 0640 config/loaxa.example.yaml "$ROOT/etc/loaxa/loaxa.yaml"
  echo "wrote /etc/loaxa/loaxa.yaml from the example: set station.* and mqtt.* in it"
fi
install -d -m 0750 "$ROOT/var/lib/loaxa"
uid=$(grep "^loaxa:" "${ROOT:-}/etc/passwd" | cut -d: -f3)
gid=$(grep "^loaxa:" "${ROOT:-}/etc/group" | cut -d: -f3)
chown "$uid:$gid" "$ROOT/var/lib/loaxa"
chgrp "$gid" "$ROOT/etc/loaxa/loaxa.yaml"

install -d -m 0755 "$ROOT/etc/systemd/system"
sed -e "s#/opt/loaxa#$HERE#g" systemd/loaxa.service > "$ROOT/etc/systemd/system/loaxa.service"
chmod 0644 "$ROOT/etc/systemd/system/loaxa.service"
echo "installed /etc/systemd/system/loaxa.service (code in $HERE)"

if [ -z "$ROOT" ] && systemctl is-system-running >/dev/null 2>&1; then
  systemctl daemon-reload
  systemctl enable --now loaxa
  echo "loaxa is enabled and started: loaxa status, journalctl -u loaxa"
else
  echo "next: systemctl daemon-reload && systemctl enable --now loaxa"
fi
