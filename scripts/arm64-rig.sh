#!/usr/bin/env bash
# The release check on the stations' own CPU: a Debian bookworm arm64 root file
# system run under qemu-user with QEMU_CPU=cortex-a72 (the Raspberry Pi 4's
# instruction set: ARMv8.0, no LSE atomics), this working tree's setup in it,
# then the end-to-end tests with the neural voice on the tiny model.
#
#   sudo scripts/arm64-rig.sh                 # build or reuse the rootfs, set up, run the subset
#   sudo scripts/arm64-rig.sh tests/test_piper.py -k load   # other pytest arguments instead
#
# The rootfs is cached in $LOAXA_RIG_DIR (default /var/cache/loaxa-arm64),
# outside the repository; the first build takes 10-15 minutes, setup in it
# about 5, and everything runs 10-50x slower than natively.
set -euo pipefail
cd "$(dirname "$0")/.."

RIG_DIR=${LOAXA_RIG_DIR:-/var/cache/loaxa-arm64}
ROOT="$RIG_DIR/rootfs"
CPU=${LOAXA_RIG_CPU:-cortex-a72}
SUBSET=(tests/test_station_e2e.py tests/test_piper.py tests/test_technician.py
        tests/test_faults_voice.py tests/test_faults_audio.py tests/test_faults_kill9.py)
[ $# -gt 0 ] && SUBSET=("$@")

[ "$(id -u)" -eq 0 ] || { echo "arm64-rig: run as root (it builds a chroot)" >&2; exit 1; }

missing=()
for pkg in qemu-user-static binfmt-support mmdebstrap rsync; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64

if [ ! -x "$ROOT/usr/bin/python3" ]; then
  echo "arm64-rig: building the bookworm arm64 rootfs in $ROOT"
  mkdir -p "$RIG_DIR"
  rm -rf "$ROOT.part"
  mmdebstrap --arch=arm64 --variant=apt --include=python3,python3-venv,ca-certificates,procps \
    bookworm "$ROOT.part"
  mv "$ROOT.part" "$ROOT"
fi

# Package downloads go through a TLS proxy whose CA only the host's bundle has.
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"

mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
for fs in proc sys dev dev/pts; do
  mountpoint -q "$ROOT/$fs" || { mount --bind "/$fs" "$ROOT/$fs"; mounted+=("$ROOT/$fs"); }
done
mkdir -p "$ROOT/work/shared"
mountpoint -q "$ROOT/work/shared" || { mount --bind ../shared "$ROOT/work/shared" && mounted+=("$ROOT/work/shared"); }

# The working tree as it is (tracked and new files), without this machine's venv.
mkdir -p "$ROOT/work/loaxa"
git ls-files -z --cached --others --exclude-standard \
  | rsync -a --delete --from0 --files-from=- ./ "$ROOT/work/loaxa/"

inside() {
  chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 QEMU_CPU="$CPU" PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_DEFAULT_TIMEOUT=180 CI="${CI:-}" \
    bash -c "$1"
}

echo "arm64-rig: $(inside 'uname -m; python3 --version' | tr '\n' ' ')CPU $CPU"
start=$(date +%s)
inside "cd /work/loaxa && scripts/setup.sh"
echo "arm64-rig: setup took $(( $(date +%s) - start )) s"
inside "cd /work/loaxa && .venv/bin/python -m loaxa doctor --probe-voice 2>/dev/null || true"
start=$(date +%s)
status=0
inside "cd /work/loaxa && .venv/bin/python -m pytest -q -p no:cacheprovider ${SUBSET[*]}" || status=$?
echo "arm64-rig: tests took $(( $(date +%s) - start )) s, exit $status"
exit $status
