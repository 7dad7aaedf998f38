#!/usr/bin/env python3
"""Packages the built `bootstrap` executable as a Lambda zip plus a manifest.

One executable serves every built-in handler (Lambda passes the function's
Handler setting, which names the handler, as `_HANDLER`), so there is one
zip. It holds one file, `bootstrap` (mode 0755), the entry point of
Lambda's provided.al2023 runtime. The zip is byte-for-byte reproducible
(fixed timestamp and attributes), so the same binary always gives the same
SHA-256 and the operator redeploys code only when it really changed.

The manifest names the zip, its SHA-256 and size, the architecture, the
handlers it serves and what each needs from its environment (copied from
handlers/requirements.json, which the handlers' tests hold to the code), so
the operator can refuse a function whose edges leave a requirement unmet.
The executable itself is copied beside it, so tests can run the very binary
the zip holds.

usage: package-handlers.py [--architecture x86_64|arm64] BINARY OUT_DIR NAME...
       package-handlers.py --zip BINARY ZIP   (the zip alone, the same way: a team's
                                               function, scripts/own-code.sh; prints its SHA-256)
"""

import hashlib
import json
import os
import shutil
import sys
import zipfile

ZIP_NAME = "sluice-handlers.zip"
REQUIREMENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "handlers", "requirements.json")


def write_zip(binary: str, path: str) -> tuple[str, int]:
    """Writes `binary` as `bootstrap` (0755) into the zip at `path`,
    reproducibly; returns the zip's SHA-256 (hex) and the binary's size."""
    if not os.path.isfile(binary):
        sys.exit(f"package-handlers: {binary} not found: build it first")
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
        return hashlib.sha256(f.read()).hexdigest(), len(data)


def package(binary: str, out_dir: str) -> dict:
    path = os.path.join(out_dir, ZIP_NAME)
    digest, binary_size = write_zip(binary, path)
    shutil.copy2(binary, os.path.join(out_dir, "bootstrap"))
    return {"zip": ZIP_NAME, "sha256": digest, "size": os.path.getsize(path), "binarySize": binary_size}


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--zip"]:
        if len(args) != 3:
            sys.exit(__doc__)
        print(write_zip(args[1], args[2])[0])
        return
    architecture = "x86_64"
    if args[:1] == ["--architecture"]:
        architecture, args = args[1], args[2:]
    if architecture not in ("x86_64", "arm64") or len(args) < 3:
        sys.exit(__doc__)
    binary, out_dir, names = args[0], args[1], sorted(args[2:])
    os.makedirs(out_dir, exist_ok=True)
    with open(REQUIREMENTS) as f:
        requirements = json.load(f)
    missing = [n for n in names if n not in requirements]
    if missing:
        sys.exit(f"package-handlers: handlers/requirements.json has no entry for {', '.join(missing)}")
    manifest = {
        "runtime": "provided.al2023",
        "architecture": architecture,
        **package(binary, out_dir),
        "handlers": names,
        "requirements": {n: requirements[n] for n in names},
    }
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    print(
        f"package-handlers: {ZIP_NAME}: {manifest['size']} bytes zipped, {manifest['binarySize']} bytes binary, "
        f"sha256 {manifest['sha256']}, serves {len(names)} handlers: {', '.join(names)}"
    )


if __name__ == "__main__":
    main()
