#!/usr/bin/env bash
# Run a command inside a Debian chroot that holds another release's QGIS.
#
#   scripts/qgis_chroot.sh RELEASE [COMMAND...]     (default COMMAND: make test)
#
# RELEASE is a Debian code name: trixie (QGIS 3.40 LTR), forky (QGIS 3.44), ...
# The chroot is built with debootstrap from the same Debian mirror as this machine's apt
# sources and kept in $LANDSEG_CHROOT_CACHE/chroot-RELEASE (default /var/cache/landseg):
# it is rebuilt only when missing or when its recipe (release, mirror, packages, this
# script's build steps) changed. The checkout is bind-mounted at its own path, so relative
# paths (../shared/data, a data/ symlink) work the same inside. The engine venv and the
# QGIS test venv live inside the chroot (its Python), never in the checkout.
#
# pip inside reaches the package index as pip on this machine does: the host's pip
# configuration files, PIP_* and proxy variables and CA certificates are carried in, and
# local folders they name (find-links, file:// indexes, constraints) are bind-mounted.
#
# Needs root (or sudo) for debootstrap, mounts and chroot.
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h | --help) usage; exit 0 ;; esac
RELEASE=$1
shift
[ $# -gt 0 ] || set -- make test

if [ "$(id -u)" != 0 ]; then
  exec sudo --preserve-env "$0" "$RELEASE" "$@"
fi

SRC=$(cd "$(dirname "$0")/.." && pwd -P)
CACHE=${LANDSEG_CHROOT_CACHE:-/var/cache/landseg}
ROOT=$CACHE/chroot-$RELEASE
PACKAGES="qgis python3-qgis qgis-providers python3-venv python3-pip xvfb xauth make git ca-certificates"
log() { printf '[qgis-chroot %s] %s\n' "$RELEASE" "$*" >&2; }

# --- The Debian mirror this machine's apt uses -------------------------------------------
host_mirror() {
  local codename
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  # deb822 .sources: the URIs of the stanza whose Suites holds this machine's release.
  awk -v want="$codename" '
    /^[[:space:]]*$/ { if (uri != "" && ok) print uri; uri = ""; ok = 0; next }
    /^URIs:/   { uri = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == want) ok = 1 }
    END { if (uri != "" && ok) print uri }
  ' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
  # One-line format.
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    sed -e 's/\[[^]]*\]//' |
    awk -v want="$codename" '$1 == "deb" && $3 == want { print $2 }' || true
}
MIRROR=${LANDSEG_DEBIAN_MIRROR:-$(host_mirror | sed -n 1p)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

# debootstrap knows releases by a script of that name; unknown (newer) ones use sid's.
SCRIPT=/usr/share/debootstrap/scripts/$RELEASE
if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends debootstrap >&2; }
fi
[ -e "$SCRIPT" ] || SCRIPT=/usr/share/debootstrap/scripts/sid

# --- Recipe: what the chroot is built from. A change means a rebuild. ----------------------
build_steps() { sed -n '/^# >>> build/,/^# <<< build/p' "$0"; }
RECIPE=$(printf 'release=%s\nmirror=%s\nscript=%s\npackages=%s\n%s\n' \
  "$RELEASE" "$MIRROR" "$(basename "$SCRIPT")" "$PACKAGES" "$(build_steps)" | sha256sum | cut -c1-16)

# --- Mounts, always undone on exit --------------------------------------------------------
MOUNTS=()
cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount -R "${MOUNTS[$i]}" 2>/dev/null || umount -R -l "${MOUNTS[$i]}" 2>/dev/null || true
  done
  MOUNTS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

mount_into() {  # mount_into ROOT TARGET_INSIDE MOUNT_ARGS...
  local root=$1 target=$2
  shift 2
  mkdir -p "$root$target"
  mountpoint -q "$root$target" && return 0
  mount "$@" "$root$target"
  MOUNTS+=("$root$target")
}
mount_system() {
  local root=$1
  mount_into "$root" /proc -t proc proc
  mount_into "$root" /sys --rbind /sys
  mount --make-rslave "$root/sys"
  mount_into "$root" /dev --bind /dev
  mount_into "$root" /dev/pts --bind /dev/pts
}
bind_ro() {  # bind_ro ROOT PATH: host PATH at the same path inside, read-only
  local root=$1 path=$2
  [ -e "$path" ] || return 0
  if [ -d "$path" ]; then mkdir -p "$root$path"; else
    mkdir -p "$(dirname "$root$path")" && touch "$root$path"
  fi
  mountpoint -q "$root$path" && return 0
  mount --bind "$path" "$root$path"
  mount -o remount,bind,ro "$root$path"
  MOUNTS+=("$root$path")
}

# Host network settings and CA certificates, refreshed on every run.
carry_network() {
  local root=$1 f
  cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  cp -L /etc/hosts "$root/etc/hosts" 2>/dev/null || true
  mkdir -p "$root/usr/local/share/ca-certificates/host"
  rm -f "$root"/usr/local/share/ca-certificates/host/*
  for f in /usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt; do
    [ -f "$f" ] && cp -L "$f" "$root/usr/local/share/ca-certificates/host/"
  done
  if [ -x "$root/usr/sbin/update-ca-certificates" ]; then
    chroot "$root" update-ca-certificates >/dev/null 2>&1 || log "warning: update-ca-certificates failed"
  fi
  # pip's configuration files (global, XDG, user) and the local folders they name.
  for f in /etc/pip.conf /etc/xdg/pip /root/.config/pip /root/.pip; do
    [ -e "$f" ] || continue
    rm -rf "${root:?}$f" && mkdir -p "$(dirname "$root$f")" && cp -rL "$f" "$root$f"
  done
  local paths
  paths=$(cat /etc/pip.conf /etc/xdg/pip/pip.conf /root/.config/pip/pip.conf /root/.pip/pip.conf 2>/dev/null
          env | grep -E '^PIP_(FIND_LINKS|EXTRA_INDEX_URL|INDEX_URL|CONSTRAINT|CERT)=')
  for f in $(printf '%s\n' "$paths" | grep -oE '(file://)?/[^[:space:]"'\'']+' | sed 's#^file://##' | sort -u); do
    case "$f" in /etc/* | /usr/* | /proc/* | /sys/* | /dev/*) continue ;; esac
    # A file:// index (root/simple) links to files beside it: mount its root.
    case "$f" in */simple | */simple/) f=$(dirname "$f") ;; esac
    while [ "$f" != / ] && [ ! -e "$f" ]; do f=$(dirname "$f"); done
    [ "$f" = / ] || [ ! -d "$f" ] || bind_ro "$root" "$f"
  done
}

# --- Build (only when missing or the recipe changed) ----------------------------------------
build() {
  local tmp=$ROOT.build
  log "building $ROOT from $MIRROR (recipe $RECIPE)"
  cleanup
  if [ -d "$tmp" ]; then  # a build that was interrupted
    findmnt -rn -o TARGET | grep -F "$tmp/" | sort -r | xargs -r -n1 umount -l
    rm -rf --one-file-system "$tmp"
  fi
  mkdir -p "$CACHE"
# >>> build
  debootstrap --variant=minbase "$RELEASE" "$tmp" "$MIRROR" "$SCRIPT" >&2
  printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n' \
    >"$tmp/etc/apt/apt.conf.d/99landseg"
  printf 'deb %s %s main\n' "$MIRROR" "$RELEASE" >"$tmp/etc/apt/sources.list"
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d" && chmod +x "$tmp/usr/sbin/policy-rc.d"
  mount_system "$tmp"
  carry_network "$tmp"
  chroot "$tmp" apt-get update -q >&2
  chroot "$tmp" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends $PACKAGES >&2
  chroot "$tmp" apt-get clean
# <<< build
  carry_network "$tmp"
  cleanup
  echo "$RECIPE" >"$tmp/.landseg-recipe"
  rm -rf --one-file-system "$ROOT"
  mv "$tmp" "$ROOT"
  log "built $ROOT"
}

mkdir -p "$CACHE"
# Building takes the lock alone; runs share it (several may run at once, none while the
# chroot is rebuilt).
exec 9>"$CACHE/chroot-$RELEASE.lock"
current() { [ "$(cat "$ROOT/.landseg-recipe" 2>/dev/null)" = "$RECIPE" ]; }
flock -s 9
if ! current; then
  flock -u 9 && flock 9  # alone: wait for the runs in progress
  current || build
  flock -s 9
fi
log "using $ROOT (recipe $RECIPE)"

# --- Run ------------------------------------------------------------------------------------
mount_system "$ROOT"
carry_network "$ROOT"
# The checkout at its own path, plus what its relative data paths point at.
mkdir -p "$ROOT$SRC"
mount_into "$ROOT" "$SRC" --bind "$SRC"
bind_ro "$ROOT" "$(dirname "$SRC")/shared"
for link in "$SRC"/data "$SRC"/data/*; do
  [ -L "$link" ] && bind_ro "$ROOT" "$(readlink -f "$link")"
done

# The chroot's own venvs, outside the checkout (which the host's venvs share).
ENV=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
     LANG=C.UTF-8 TERM="${TERM:-dumb}" CI="${CI:-}"
     ENGINE_VENV=/root/.local/share/landseg/engine-venv TEST_VENV=/opt/landseg/venv-qgis)
while IFS= read -r v; do ENV+=("$v"); done < <(env | grep -E '^(PIP_[A-Z_]+|[Hh][Tt][Tt][Pp][Ss]?_[Pp][Rr][Oo][Xx][Yy]|[Nn][Oo]_[Pp][Rr][Oo][Xx][Yy]|LANDSEG_[A-Z_]+)=' | grep -v '^LANDSEG_ENGINE_PYTHON=')
log "QGIS $(chroot "$ROOT" dpkg-query -W -f '${Version}' qgis), $(chroot "$ROOT" python3 --version)"
set +e
chroot "$ROOT" env -i "${ENV[@]}" bash -c 'cd "$1" && shift && exec "$@"' _ "$SRC" "$@"
rc=$?
set -e
exit "$rc"
