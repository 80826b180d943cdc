#!/usr/bin/env bash
# The CPU base image, made from Debian's packages: debootstrap a minimal bookworm root
# filesystem with python3 and python3-venv, then import it as an image (a build cache:
# skipped when the image exists; FORCE=1 rebuilds). Needs root (debootstrap) and the
# Debian mirror apt uses (DEBIAN_MIRROR overrides it).
#   trainer/image/build-base.sh [IMAGE]      default IMAGE: pipeform-base:bookworm
set -euo pipefail
cd "$(dirname "$0")/../.."
source trainer/image/engine.sh
IMAGE=${1:-pipeform-base:bookworm}
CACHE=${PIPEFORM_BUILD_DIR:-.pipeform-build}
if [ -z "${FORCE:-}" ] && "${ENGINE[@]}" image exists "$IMAGE" 2>/dev/null; then
    echo "base image $IMAGE exists (cached); FORCE=1 rebuilds it"
    exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "error: debootstrap is not installed; install it (apt-get install debootstrap) or pass an existing base: make image BASE_IMAGE=..." >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "error: debootstrap needs root; run as root, or pass an existing base: make image BASE_IMAGE=..." >&2
    exit 1
fi
MIRROR=${DEBIAN_MIRROR:-$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | grep -v security | grep -E "/debian/?$" | head -1 | awk "{print \$2}" || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ROOTFS=$CACHE/base-rootfs
rm -rf "$ROOTFS" && mkdir -p "$CACHE"
echo "debootstrap bookworm from $MIRROR into $ROOTFS"
if ! debootstrap --variant=minbase --include=python3,python3-venv bookworm "$ROOTFS" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
    tail -5 "$CACHE/debootstrap.log" >&2
    echo "error: debootstrap could not build the base (log: $CACHE/debootstrap.log); check that $MIRROR is reachable (DEBIAN_MIRROR=... to use another), or pass an existing base: make image BASE_IMAGE=..." >&2
    exit 1
fi
# no package caches or lists in the image
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/*
tar -C "$ROOTFS" -c . | "${ENGINE[@]}" import --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
rm -rf "$ROOTFS"
echo "base image $IMAGE built"
