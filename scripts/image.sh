#!/usr/bin/env bash
# The operator's container image (Dockerfile at the repository root), built
# here with Debian's buildah: no daemon, no registry, nothing pulled.
#
#   scripts/image.sh context [PROFILE]  lay out a build context (a new
#                                        directory, printed) for `docker build`
#   scripts/image.sh tag [PROFILE]      print the image's name for the current
#                                        operator binary and handlers
#   scripts/image.sh build [PROFILE]    build that image into a docker-archive
#                                        tar in the cache (once per content)
#   scripts/image.sh load [ADDRESS]     import it into containerd (ADDRESS: its
#                                        socket, default $SLUICE_CONTAINERD_ADDRESS)
#   scripts/image.sh archive CONTEXT NAME OUT
#                                        build CONTEXT/Dockerfile (FROM scratch)
#                                        into the docker-archive tar OUT
#
# PROFILE is the cargo profile whose sluice-operator goes in (default debug,
# what `make build` makes; `release` for an image to publish). The executable
# is stripped on the way in. The image's tag is a hash of what it holds, so a
# new binary is a new tag and a Deployment using it rolls.
#
# The base: the Dockerfile's default is distroless' cc-debian12 (glibc,
# libgcc, CA certificates, user nonroot 65532, no shell). Here, where no
# registry is reached, the same is assembled from this Debian 12 machine's
# files: the libraries the operator links (ldd), the CA bundle, and
# passwd/group entries for nonroot.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
IMAGES="$CACHE/images"
REPOSITORY=sluice.local/operator
BASE=sluice.local/base:debian12
KEEP=3 # operator images kept in the cache; older ones are removed

log() { echo "image: $*" >&2; }

binary() {
  local bin="$TARGET_DIR/${1:-debug}/sluice-operator"
  [[ -x "$bin" ]] || { log "$bin is missing: run make build (or cargo build --profile ${1:-debug} -p sluice-operator)"; exit 1; }
  echo "$bin"
}

handlers_dir() {
  local dir; dir="$("$ROOT/scripts/handlers.sh" dir)"
  [[ -f "$dir/manifest.json" ]] || { log "$dir holds no handlers: run make handlers"; exit 1; }
  echo "$dir"
}

# The image's tag: a hash of the executable, the handlers' package, the
# Dockerfile and this script.
tag() {
  local bin handlers
  bin="$(binary "${1:-}")"; handlers="$(handlers_dir)"
  local hash
  hash="$(cat "$bin" "$handlers/manifest.json" "$handlers"/*.zip "$ROOT/Dockerfile" "$0" | sha256sum | cut -c1-12)"
  echo "$REPOSITORY:$hash"
}

# context DIR PROFILE: the Dockerfile's build context in DIR.
make_context() {
  local dir="$1" profile="$2" handlers
  handlers="$(handlers_dir)"
  mkdir -p "$dir/handlers"
  strip -o "$dir/sluice-operator" "$(binary "$profile")"
  cp "$handlers/manifest.json" "$handlers"/*.zip "$dir/handlers/"
}

# buildah with its storage under WORK (vfs: no mounts to undo).
buildah_in() {
  local work="$1"; shift
  buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"
}

# The local stand-in for distroless cc-debian12:nonroot, in WORK's storage.
make_base() {
  local work="$1" rootfs="$1/base/rootfs" bin="$2" lib
  mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$rootfs/home/nonroot"
  chmod 1777 "$rootfs/tmp"
  chown 65532:65532 "$rootfs/home/nonroot"
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
  cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
  printf 'FROM scratch\nCOPY rootfs/ /\n' >"$work/base/Dockerfile"
  buildah_in "$work" bud --quiet --layers=false -t "$BASE" "$work/base" >/dev/null
}

build() {
  local profile="${1:-debug}" name
  name="$(tag "$profile")"
  local tar="$IMAGES/operator-${name##*:}.tar"
  if [[ -f "$tar" ]]; then echo "$name"; return; fi
  command -v buildah >/dev/null || { log "buildah is missing (apt-get install buildah)"; exit 1; }
  local start=$SECONDS work
  work="$(mktemp -d /tmp/sluice-image.XXXXXX)"
  trap 'buildah_in "'"$work"'" rmi --all --force >/dev/null 2>&1; rm -rf "'"$work"'"' EXIT
  make_base "$work" "$(binary "$profile")"
  make_context "$work/context" "$profile"
  buildah_in "$work" bud --quiet --layers=false --pull-never --build-arg "BASE=$BASE" \
    -f "$ROOT/Dockerfile" -t "$name" "$work/context" >/dev/null
  mkdir -p "$IMAGES"
  buildah_in "$work" push --quiet "$name" "docker-archive:$tar.tmp.$$:$name"
  mv "$tar.tmp.$$" "$tar"
  # Keep the newest few.
  ls -t "$IMAGES"/operator-*.tar 2>/dev/null | tail -n +$((KEEP + 1)) | xargs -r rm -f
  log "built $name ($(du -m "$tar" | cut -f1) MB uncompressed) in $((SECONDS - start)) s"
  echo "$name"
}

archive() {
  local context="$1" name="$2" out="$3" work
  work="$(mktemp -d /tmp/sluice-image.XXXXXX)"
  trap 'buildah_in "'"$work"'" rmi --all --force >/dev/null 2>&1; rm -rf "'"$work"'"' EXIT
  buildah_in "$work" bud --quiet --layers=false -t "$name" "$context" >/dev/null
  buildah_in "$work" push --quiet "$name" "docker-archive:$out:$name"
}

load() {
  local address="${1:-${SLUICE_CONTAINERD_ADDRESS:?containerd socket: pass it or source the cluster env}}"
  local name tar
  name="$(build)"
  tar="$IMAGES/operator-${name##*:}.tar"
  ctr --address "$address" --namespace k8s.io images import "$tar" >/dev/null
  echo "$name"
}

case "${1:-}" in
  context)
    dir="$(mktemp -d /tmp/sluice-image-context.XXXXXX)"
    make_context "$dir" "${2:-debug}"
    echo "$dir"
    ;;
  tag) tag "${2:-}" ;;
  build) build "${2:-}" ;;
  load) load "${2:-}" ;;
  archive) archive "${2:?context}" "${3:?name}" "${4:?output}" ;;
  *) echo "usage: $0 context|tag|build [PROFILE] | load [ADDRESS] | archive CONTEXT NAME OUT" >&2; exit 2 ;;
esac
