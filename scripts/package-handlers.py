#!/usr/bin/env python3
"""Packages built handler binaries as Lambda zips plus a manifest.

Each zip holds one file, `bootstrap` (mode 0755), the entry point of Lambda's
provided.al2023 runtime. Zips are byte-for-byte reproducible (fixed
timestamps and attributes), so the same binary always gives the same
SHA-256 and the operator redeploys code only when it really changed.

usage: package-handlers.py [--architecture x86_64|arm64] BIN_DIR OUT_DIR NAME...
"""

import hashlib
import json
import os
import sys
import zipfile


def package(bin_dir: str, out_dir: str, name: str) -> dict:
    binary = os.path.join(bin_dir, name)
    if not os.path.isfile(binary):
        sys.exit(f"package-handlers: {binary} not found: build it first (make handlers)")
    zip_name = f"{name}.zip"
    path = os.path.join(out_dir, zip_name)
    tmp = path + ".tmp"
    info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = (0o100755 << 16)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, so the mode bits are honoured
    with open(binary, "rb") as f:
        data = f.read()
    with zipfile.ZipFile(tmp, "w") as z:
        z.writestr(info, data, compresslevel=9)
    os.replace(tmp, path)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return {
        "name": name,
        "zip": zip_name,
        "sha256": digest,
        "size": os.path.getsize(path),
        "binarySize": len(data),
    }


def main() -> None:
    args = sys.argv[1:]
    architecture = "x86_64"
    if args[:1] == ["--architecture"]:
        architecture, args = args[1], args[2:]
    if architecture not in ("x86_64", "arm64") or len(args) < 3:
        sys.exit(__doc__)
    bin_dir, out_dir, names = args[0], args[1], sorted(args[2:])
    os.makedirs(out_dir, exist_ok=True)
    handlers = [package(bin_dir, out_dir, n) for n in names]
    manifest = {"runtime": "provided.al2023", "architecture": architecture, "handlers": handlers}
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    for h in handlers:
        print(f"{h['name']}: {h['size']} bytes zipped, {h['binarySize']} bytes binary, sha256 {h['sha256']}")


if __name__ == "__main__":
    main()
