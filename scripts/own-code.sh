#!/usr/bin/env bash
# A team's own Rust function (a crate on the handlers library, such as the
# template examples/rust-function): built for Lambda's provided.al2023 into
# a zip, uploaded to S3 under its digest, and the pipeline's `code:` block
# printed.
#
#   scripts/own-code.sh build CRATE [--arm64]   build unless cached; print the zip's path
#   scripts/own-code.sh dir CRATE [--arm64]     print the zip's path, without building
#   scripts/own-code.sh upload CRATE --bucket B [--key-prefix P] [--arm64]
#                                               build unless cached, put the zip at
#                                               P/<name>-<sha256>.zip unless it is there,
#                                               print the `code:` block (stdout)
#
# CRATE is the directory of the crate's Cargo.toml; it must have one binary.
# The build is cargo-lambda's (pinned by scripts/tools.sh), with the
# workspace's `lambda` profile when it has one (else `release`), for
# x86_64 with the host's cargo, or with --arm64 for aarch64 through zig
# (needs `rustup target add aarch64-unknown-linux-gnu`). The zip holds
# `bootstrap` at its root and is reproducible (scripts/package-handlers.py
# --zip). Like scripts/handlers.sh, it is kept in a directory named by what
# it is built from: the crate's files and those of every path dependency
# (the handlers library; not their tests, examples or Markdown), the
# packages it links (versions, features), the workspace's profiles, the
# toolchain, the architecture and these scripts; the newest few are kept.
# A cached build costs a `cargo metadata`, a `cargo tree` and hashing.
#
# Upload uses boto3 from the moto environment scripts/tools.sh installs
# (`make tools`), or the system python's if it has boto3. It honours
# AWS_ENDPOINT_URL (then path-style addressing, as the handlers do), the
# standard credential variables and AWS_REGION.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
KEEP=4 # builds kept in the cache; older ones are removed

log() { echo "own-code: $*" >&2; }
die() { log "$*"; exit 1; }
usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

CMD="${1:-}"; shift || true
CRATE="" ARCH=x86_64 BUCKET="" PREFIX=""
while (($#)); do
  case "$1" in
    --arm64) ARCH=arm64 ;;
    --x86_64 | --x86-64) ARCH=x86_64 ;;
    --bucket) BUCKET="${2:?--bucket needs a name}"; shift ;;
    --key-prefix) PREFIX="${2?--key-prefix needs a value}"; shift ;;
    -*) usage ;;
    *) [[ -z "$CRATE" ]] || usage; CRATE="$1" ;;
  esac
  shift
done
[[ -n "$CRATE" ]] || usage
[[ -f "$CRATE/Cargo.toml" ]] || die "$CRATE/Cargo.toml not found: CRATE is the crate's directory"
CRATE="$(cd "$CRATE" && pwd)"
MANIFEST="$CRATE/Cargo.toml"
case "$ARCH" in
  x86_64) TARGET=x86_64-unknown-linux-gnu ;;
  arm64) TARGET=aarch64-unknown-linux-gnu ;;
esac

# The crate's name and its one binary.
read -r NAME BIN < <(cargo metadata --manifest-path "$MANIFEST" --no-deps --format-version 1 --offline 2>/dev/null \
  | python3 -c '
import json, sys
meta = json.load(sys.stdin)
manifest = sys.argv[1]
pkg = next(p for p in meta["packages"] if p["manifest_path"] == manifest)
bins = [t["name"] for t in pkg["targets"] if "bin" in t["kind"]]
if len(bins) != 1:
    sys.exit("own-code: %s has %d binaries (%s); a function is one" % (pkg["name"], len(bins), ", ".join(bins)))
print(pkg["name"], bins[0])
' "$MANIFEST") || die "cannot read $MANIFEST with cargo metadata"
WORKSPACE_MANIFEST="$(cargo locate-project --manifest-path "$MANIFEST" --workspace --message-format plain)"
if grep -q '^\[profile\.lambda\]' "$WORKSPACE_MANIFEST"; then PROFILE=lambda; else PROFILE=release; fi

# What the executable links, as cargo resolves it for this crate alone:
# registry packages by version and features, path packages (the handlers
# library) by their files, since their version says nothing of them.
dependencies() {
  cargo tree --manifest-path "$MANIFEST" -e normal,build --prefix none --format '{p} {f}' --locked --offline 2>/dev/null \
    || cargo tree --manifest-path "$MANIFEST" -e normal,build --prefix none --format '{p} {f}' --locked
}

key() {
  local tree paths
  tree="$(dependencies | LC_ALL=C sort -u)"
  paths="$(grep -o ' ([^)]*/[^)]*)' <<<"$tree" | tr -d '()' | sed 's/^ //' | LC_ALL=C sort -u)"
  {
    printf 'arch=%s profile=%s\n' "$ARCH" "$PROFILE"
    rustc -vV
    sed 's| ([^)]*/[^)]*)||' <<<"$tree"
    sed -n '/^\[profile/,$p' "$WORKSPACE_MANIFEST"
    sha256sum "$ROOT/scripts/own-code.sh" "$ROOT/scripts/package-handlers.py" "$ROOT/scripts/check-glibc.sh" \
      | cut -d' ' -f1
    echo "$CARGO_LAMBDA"
    local dir
    while IFS= read -r dir; do
      [[ -n "$dir" ]] || continue
      # Relative names: the same sources in another checkout are the same
      # build. What cannot be in the executable is left out: the build's
      # output, git, prose, and the tests, benchmarks and examples.
      (cd "$dir" && find . \( -path ./target -o -path ./.git -o -path ./tests -o -path ./benches \
        -o -path ./examples \) -prune -o -type f -not -name '*.md' -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum)
    done <<<"$paths"
  } | sha256sum | cut -c1-16
}

CARGO_LAMBDA="$("$ROOT/scripts/tools.sh" path cargo-lambda)"
out_dir() { echo "$CACHE/own-code/$NAME-$ARCH-$(key)"; }

build() {
  local dir zip
  dir="$(out_dir)"
  zip="$dir/$NAME.zip"
  if [[ -f "$dir/sha256" ]]; then
    touch "$dir" # most recently used: the last to be pruned
    log "up to date ($zip)"
    echo "$zip"
    return
  fi
  [[ -x "$CARGO_LAMBDA" ]] || die "cargo-lambda is not installed: make tools-lambda"
  local compiler=()
  if [[ "$ARCH" == x86_64 ]]; then
    [[ "$(uname -m)" == x86_64 ]] || die "x86_64 builds need an x86_64 host here; build --arm64, or on x86_64"
    compiler=(--compiler cargo)
  elif ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    die "--arm64 needs the Rust target: rustup target add $TARGET"
  fi
  local profile=(--release)
  [[ "$PROFILE" == release ]] || profile=(--profile "$PROFILE")
  local tmp="$dir.tmp.$$" start=$SECONDS
  rm -rf "$tmp"; mkdir -p "$tmp"
  log "building $NAME ($BIN) for $ARCH with the $PROFILE profile"
  "$CARGO_LAMBDA" lambda build --manifest-path "$MANIFEST" --bin "$BIN" "${profile[@]}" \
    --target "$TARGET" "${compiler[@]}" --lambda-dir "$tmp/lambda" >&2
  local binary="$tmp/lambda/$BIN/bootstrap"
  [[ -f "$binary" ]] || die "cargo-lambda left no $binary"
  [[ "$(out_dir)" == "$dir" ]] || { rm -rf "$tmp"; die "the sources changed during the build; run it again"; }
  [[ "$ARCH" != x86_64 ]] || "$ROOT/scripts/check-glibc.sh" "$(dirname "$binary")" bootstrap >&2
  python3 "$ROOT/scripts/package-handlers.py" --zip "$binary" "$tmp/$NAME.zip" >"$tmp/sha256"
  rm -rf "$tmp/lambda"
  rm -rf "$dir"; mv "$tmp" "$dir"
  log "built in $((SECONDS - start)) s: $(stat -c %s "$zip") bytes, sha256 $(cat "$dir/sha256")"
  find "$CACHE/own-code" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' | sort -rn \
    | tail -n +$((KEEP + 1)) | cut -d' ' -f2- | xargs -r rm -rf
  echo "$zip"
}

python_with_boto3() {
  local python
  for python in "$("$ROOT/scripts/tools.sh" path python)" python3; do
    if [[ -x "$(command -v "$python")" ]] && "$python" -c 'import boto3' 2>/dev/null; then
      echo "$python"; return
    fi
  done
  die "no python with boto3 for the upload: make tools (it installs moto, which brings boto3)"
}

upload() {
  [[ -n "$BUCKET" ]] || die "upload needs --bucket"
  local zip digest key python
  zip="$(build)"
  digest="$(cat "$(dirname "$zip")/sha256")"
  PREFIX="${PREFIX#/}"; PREFIX="${PREFIX%/}"
  key="${PREFIX:+$PREFIX/}$NAME-$digest.zip"
  python="$(python_with_boto3)"
  "$python" - "$zip" "$BUCKET" "$key" "$digest" <<'PY' >&2
import base64, os, sys
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

path, bucket, key, digest = sys.argv[1:]
custom = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}) if custom else None)
try:
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    # Only an object S3 vouches for; one without a checksum (put by other
    # means, or an emulator that keeps none) is written again.
    if head.get("ChecksumSHA256") == base64.b64encode(bytes.fromhex(digest)).decode():
        print(f"own-code: s3://{bucket}/{key} is there already")
        sys.exit(0)
except ClientError as e:
    if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
        raise
with open(path, "rb") as f:
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=f.read(),
        ContentType="application/zip",
        # S3 refuses the object unless it has this digest.
        ChecksumSHA256=base64.b64encode(bytes.fromhex(digest)).decode(),
    )
print(f"own-code: uploaded s3://{bucket}/{key}")
PY
  cat <<EOF
code:
  s3: {bucket: $BUCKET, key: $key, sha256: $digest}
  runtime: provided.al2023
  handler: bootstrap
  architecture: $ARCH
EOF
}

case "$CMD" in
  build) build ;;
  dir) echo "$(out_dir)/$NAME.zip" ;;
  upload) upload ;;
  *) usage ;;
esac
