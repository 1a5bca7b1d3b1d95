#!/usr/bin/env python3
"""Write an OCI image layout for the benchmarks, offline (stdlib only).

Usage: mkimage.py OUTDIR SEED SIZE[,SIZE...]

Writes OUTDIR/{oci-layout,index.json,blobs/sha256/...}: one OCI image manifest
(tagged "latest" through the org.opencontainers.image.ref.name annotation, so
skopeo reads it as oci:OUTDIR:latest), a config, and one uncompressed tar layer
per SIZE (bytes; suffixes k/m for KiB/MiB), each holding one file of random
bytes. SEED goes into the config and the layer file names; the layer contents
come from os.urandom, so every call makes new digests (the benchmarks want
blobs a registry has never seen). Prints the manifest digest.
"""
import hashlib
import json
import os
import sys
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
CHUNK = 4 << 20


def parse_size(s):
    s = s.strip().lower()
    mult = 1
    if s.endswith("k"):
        mult, s = 1 << 10, s[:-1]
    elif s.endswith("m"):
        mult, s = 1 << 20, s[:-1]
    return int(float(s) * mult)


def _put_blob(blobs, data):
    hexd = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, hexd), "wb") as f:
        f.write(data)
    return "sha256:" + hexd, len(data)


def _write_tar_layer(blobs, name, size):
    """One tar holding one regular file of `size` random bytes; hashed while written."""
    tmp = os.path.join(blobs, ".tmp-layer")
    h = hashlib.sha256()
    total = 0
    with open(tmp, "wb") as f:
        def w(b):
            nonlocal total
            h.update(b)
            f.write(b)
            total += len(b)
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode, ti.mtime = size, 0o644, 1704067200
        w(ti.tobuf(format=tarfile.USTAR_FORMAT))
        left = size
        while left:
            n = min(CHUNK, left)
            w(os.urandom(n))
            left -= n
        if size % 512:
            w(b"\0" * (512 - size % 512))
        w(b"\0" * 1024)
    hexd = h.hexdigest()
    os.replace(tmp, os.path.join(blobs, hexd))
    return "sha256:" + hexd, total


def make_layout(outdir, seed, sizes):
    blobs = os.path.join(outdir, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    layers, diff_ids = [], []
    for i, size in enumerate(sizes):
        d, n = _write_tar_layer(blobs, "bench/%s/layer%d.bin" % (seed, i), size)
        layers.append({"mediaType": OCI_LAYER_TAR, "digest": d, "size": n})
        diff_ids.append(d)  # uncompressed: the diff ID is the layer digest
    config = {
        "created": "2024-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["BENCH_SEED=%s" % seed], "Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "bench layer %d" % i}
                    for i in range(len(sizes))],
    }
    cd, cn = _put_blob(blobs, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": cn},
        "layers": layers,
    }
    md, mn = _put_blob(blobs, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": md, "size": mn,
                       "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
    }
    with open(os.path.join(outdir, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(outdir, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return md


def main(argv):
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    print(make_layout(argv[1], argv[2], [parse_size(s) for s in argv[3].split(",")]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
