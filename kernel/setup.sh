#!/usr/bin/env bash
# Builds (or reuses) the real-kernel target: Linux 6.12 from Debian's linux-source-6.12 with
# pkvm-check's patches, and an initramfs holding the agent. Prints the image directory (Image,
# vmlinux, initrd.cpio, key) as its last line on stdout; progress goes to stderr.
#
#   kernel/setup.sh [--kernel-src DIR] [--inject BUG] [--cache DIR]
#
# --kernel-src DIR  build a developer's own tree instead (our patch is applied to it if it lacks it;
#                   the tree is built out of place, so it stays clean apart from that)
# --inject BUG      also apply kernel/bugs/BUG.patch (reverted after the build)
# --cache DIR       where sources, build trees and images live (default $PKVM_CHECK_CACHE or
#                   ~/.cache/pkvm-check); images are keyed by a hash of everything that went in
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${PKVM_CHECK_CACHE:-$HOME/.cache/pkvm-check}
src=""
inject=""
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel-src) src=${2:?--kernel-src needs a directory}; shift 2 ;;
    --inject) inject=${2:?--inject needs a bug id}; shift 2 ;;
    --cache) cache=${2:?--cache needs a directory}; shift 2 ;;
    *) echo "setup.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
say() { printf 'kernel setup: %s\n' "$*" >&2; }
[ -z "$inject" ] || [ -f "$here/bugs/$inject.patch" ] || { echo "setup.sh: no kernel patch for bug $inject (kernel/bugs/$inject.patch)" >&2; exit 2; }

# One setup at a time per cache: the source tree and the build directory are shared.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

# 1. Packages (Debian): installed only when a tool is missing, and said so.
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -f /usr/aarch64-linux-gnu/include/stdio.h ] || need+=(libc6-dev-arm64-cross)
command -v qemu-system-aarch64 >/dev/null || need+=(qemu-system-arm)
for t in bc flex bison cpio; do command -v $t >/dev/null || need+=($t); done
[ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
[ -f /usr/include/libelf.h ] || need+=(libelf-dev)
[ -n "$src" ] || [ -f /usr/src/linux-source-6.12.tar.xz ] || need+=(linux-source-6.12)
if [ ${#need[@]} -gt 0 ]; then
  say "installing missing Debian packages: ${need[*]}"
  [ "$(id -u)" = 0 ] || { echo "setup.sh: missing packages ${need[*]}; install them (apt-get install ${need[*]}) or run as root" >&2; exit 2; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi

patches=("$here"/patches/*.patch)
config="$here/pkvm-check.config"

# 2. The source tree: Debian's 6.12 unpacked once per version; our patches are kept applied, and
#    when they change the old ones are reverted and the new ones applied in place, so only the files
#    they touch rebuild.
if [ -z "$src" ]; then
  version=$(dpkg-query -W -f='${Version}' linux-source-6.12)
  tree="$cache/trees/linux-$version"
  if [ ! -f "$tree/.pkvm-check-unpacked" ]; then
    say "unpacking linux-source-6.12 $version into $tree"
    rm -rf "$tree" && mkdir -p "$tree"
    tar -xf /usr/src/linux-source-6.12.tar.xz -C "$tree" --strip-components=1
    mkdir -p "$tree/.pkvm-check-applied" && touch "$tree/.pkvm-check-unpacked"
  fi
  applied="$tree/.pkvm-check-applied"
  if [ "$(cat "$applied"/*.patch 2>/dev/null | sha256sum)" != "$(cat "${patches[@]}" | sha256sum)" ]; then
    for p in $(ls -r "$applied"/*.patch 2>/dev/null); do say "reverting $(basename "$p")"; patch -s -R -d "$tree" -p1 < "$p"; rm "$p"; done
    for p in "${patches[@]}"; do say "applying $(basename "$p")"; patch -s -d "$tree" -p1 < "$p"; cp "$p" "$applied/"; done
  fi
  build="$cache/build/linux-$version"
  origin="debian-linux-source-6.12 $version"
else
  tree=$(cd "$src" && pwd)
  [ -f "$tree/Makefile" ] && [ -d "$tree/arch/arm64/kvm/hyp/nvhe" ] || { echo "setup.sh: $src is not a Linux source tree" >&2; exit 2; }
  if [ ! -f "$tree/arch/arm64/kvm/pkvm_check.c" ]; then
    say "applying pkvm-check's patches to $tree"
    for p in "${patches[@]}"; do patch -s -d "$tree" -p1 < "$p"; done
  fi
  build="$cache/build/own-$(printf '%s' "$tree" | sha256sum | cut -c1-12)"
  origin="own tree $tree @ $(cd "$tree" && git rev-parse HEAD 2>/dev/null || echo untracked) $(find "$tree/arch/arm64/kvm" -newer "$tree/Makefile" -type f -name '*.[ch]' -exec cat {} + | sha256sum | cut -c1-16)"
fi

# 3. The image key: everything that went in.
bugfile=()
[ -z "$inject" ] || bugfile=("$here/bugs/$inject.patch")
key=$( { echo "$origin"; cat "$config" "${patches[@]}" "$here/agent/agent.c" "$here/setup.sh" "${bugfile[@]}"; } | sha256sum | cut -c1-16)
out="$cache/images/$key"
if [ -f "$out/ready" ]; then
  say "reusing $out"
  echo "$out"
  exit 0
fi

# 4. Build (out of tree, kept for incremental rebuilds), with the bug applied only meanwhile.
mkdir -p "$build"
make_k() { make -s -C "$tree" ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- O="$build" "$@" >&2; }
revert() { [ -z "$inject" ] || patch -s -R -d "$tree" -p1 < "$here/bugs/$inject.patch" || true; }
if [ -n "$inject" ]; then
  say "applying kernel/bugs/$inject.patch"
  patch -s -d "$tree" -p1 < "$here/bugs/$inject.patch"
  trap revert EXIT
fi
start=$(date +%s)
say "building Image in $build (a cold build takes several minutes on 2 cores)"
make_k KCONFIG_ALLCONFIG="$config" allnoconfig
for opt in $(grep -o '^CONFIG_[A-Z0-9_]*=y' "$config" | cut -d= -f1); do
  grep -q "^$opt=y" "$build/.config" || { echo "setup.sh: $opt did not stick in the kernel config" >&2; exit 1; }
done
make_k -j"$(nproc)" Image vmlinux
revert; trap - EXIT
say "kernel built in $(( $(date +%s) - start )) s"

# 5. The initramfs: the agent as a static /init, and a console node.
rm -rf "$out.tmp" && mkdir -p "$out.tmp/inc/linux"
cp "$tree/include/uapi/linux/pkvm_check.h" "$out.tmp/inc/linux/"
aarch64-linux-gnu-gcc -static -O2 -Wall -Werror -I"$out.tmp/inc" -o "$out.tmp/init" "$here/agent/agent.c"
printf 'dir /dev 0755 0 0\nnod /dev/console 0600 0 0 c 5 1\nfile /init %s 0755 0 0\n' "$out.tmp/init" > "$out.tmp/initramfs.list"
"$build/usr/gen_init_cpio" "$out.tmp/initramfs.list" > "$out.tmp/initrd.cpio"
cp "$build/arch/arm64/boot/Image" "$build/vmlinux" "$out.tmp/"
rm -rf "$out.tmp/inc" "$out.tmp/init" "$out.tmp/initramfs.list"
printf '%s\n' "$origin" > "$out.tmp/origin"
printf '%s\n' "$key" > "$out.tmp/key"
printf '%s\n' "$(( $(date +%s) - start ))" > "$out.tmp/build-seconds"
touch "$out.tmp/ready"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
