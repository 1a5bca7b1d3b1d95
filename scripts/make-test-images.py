#!/usr/bin/env python3
"""Write deterministic OCI image layouts for berth's end-to-end tests.

Usage: make-test-images.py OUTDIR [--big-size BYTES] [--only NAME[,NAME...]] [--salt STR]

Creates one OCI image layout (oci-layout, index.json, blobs/sha256/...) per
image under OUTDIR, each with its manifest tagged "latest" (the
org.opencontainers.image.ref.name annotation), so skopeo can read it as
oci:OUTDIR/NAME:latest.

  multi      OCI image manifest, 4 small gzip'd tar layers, config
  big        OCI image manifest, one large uncompressed tar layer of
             pseudo-random (incompressible) data, --big-size bytes of payload
             (default 64 MiB)
  multiarch  OCI image index over 3 platform manifests (linux/amd64,
             linux/arm64/v8, linux/s390x), each with its own layers and config
  docker     Docker schema2 manifest (application/vnd.docker.distribution.
             manifest.v2+json) with 2 gzip'd layers
  dockerlist Docker manifest list over 2 Docker schema2 manifests
             (linux/amd64, linux/arm64/v8)

skopeo's oci: transport only accepts OCI media types, so the two Docker images
are written in skopeo's dir: format instead (dir:OUTDIR/NAME): a "version"
file, manifest.json (the top-level manifest), one file per blob named by its
hex digest, and HEX.manifest.json for each manifest of a list.

Everything is derived from fixed seeds: the same arguments give the same bytes
(given the same zlib), so digests are stable from run to run. --salt STR mixes
STR into every seed, giving another set of images with no blob in common with
the default set (for tests that need blobs the registry has not seen). Stdlib
only.
Prints "NAME DIGEST" for each image's top-level manifest on stdout.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
D2_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
D2_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
D2_CONFIG = "application/vnd.docker.container.image.v1+json"
D2_LAYER_GZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"

EPOCH = "2024-01-01T00:00:00Z"
CHUNK = 1 << 20
SALT = ""


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def prng_chunk(seed, index, size):
    """Deterministic pseudo-random bytes (SHAKE-128 keyed by seed and chunk index)."""
    return hashlib.shake_128(b"%s%s/%d" % (SALT.encode(), seed.encode(), index)).digest(size)


class PrngReader(io.RawIOBase):
    """File-like reader producing `size` bytes of deterministic pseudo-random data."""

    def __init__(self, seed, size):
        self.seed, self.size, self.pos = seed, size, 0
        self.buf, self.chunk = b"", 0

    def readable(self):
        return True

    def read(self, n=-1):
        if n is None or n < 0:
            n = self.size - self.pos
        n = min(n, self.size - self.pos)
        while len(self.buf) < n:
            want = min(CHUNK, self.size - self.pos - len(self.buf))
            self.buf += prng_chunk(self.seed, self.chunk, want)
            self.chunk += 1
        out, self.buf = self.buf[:n], self.buf[n:]
        self.pos += n
        return out


class Layout:
    """An OCI image layout directory being written."""

    def __init__(self, path):
        self.path = path
        self.blobdir = os.path.join(path, "blobs", "sha256")
        os.makedirs(self.blobdir, exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')

    def put(self, data):
        digest = sha256(data)
        p = os.path.join(self.blobdir, digest.split(":", 1)[1])
        if not os.path.exists(p):
            with open(p, "wb") as f:
                f.write(data)
        return digest

    def put_file(self, tmp_path):
        h = hashlib.sha256()
        with open(tmp_path, "rb") as f:
            for b in iter(lambda: f.read(CHUNK), b""):
                h.update(b)
        digest = "sha256:" + h.hexdigest()
        os.replace(tmp_path, os.path.join(self.blobdir, h.hexdigest()))
        return digest

    put_manifest = put

    def write_index(self, descriptor, tags=("latest",)):
        manifests = []
        for t in tags:
            d = dict(descriptor)
            d["annotations"] = {"org.opencontainers.image.ref.name": t}
            manifests.append(d)
        index = {"schemaVersion": 2, "manifests": manifests}
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump(index, f)


class DirLayout:
    """skopeo's dir: transport format, for manifests the oci: transport will not take."""

    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "version"), "w") as f:
            f.write("Directory Transport Version: 1.1\n")

    def _write(self, name, data):
        with open(os.path.join(self.path, name), "wb") as f:
            f.write(data)

    def put(self, data):
        digest = sha256(data)
        self._write(digest.split(":", 1)[1], data)
        return digest

    def put_manifest(self, data):
        digest = sha256(data)
        self._write(digest.split(":", 1)[1] + ".manifest.json", data)
        return digest

    def write_index(self, descriptor):
        hexd = descriptor["digest"].split(":", 1)[1]
        os.replace(os.path.join(self.path, hexd + ".manifest.json"), os.path.join(self.path, "manifest.json"))


def tarinfo(name, size, mode=0o644, typ=tarfile.REGTYPE):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.type = size, mode, typ
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0, 0, "root", "root"
    return ti


def small_tar(seed, nfiles=3):
    """A small tar with a directory and a few files whose content derives from seed."""
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.GNU_FORMAT) as tf:
        d = "data-" + seed.replace("/", "-")
        tf.addfile(tarinfo(d, 0, 0o755, tarfile.DIRTYPE))
        for i in range(nfiles):
            body = ("%s%s file %d\n" % (SALT, seed, i)).encode() * (i + 1)
            body += prng_chunk(seed, i, 512 * (i + 1))  # a bit of entropy so gzip output is not trivial
            tf.addfile(tarinfo("%s/file%d" % (d, i), len(body)), io.BytesIO(body))
    return bio.getvalue()


def gzip_bytes(data, level=6):
    bio = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=bio, compresslevel=level, mtime=0) as gz:
        gz.write(data)
    return bio.getvalue()


def config_json(arch, os_, diff_ids, variant=None, extra_env=None):
    cfg = {
        "architecture": arch,
        "os": os_,
        "created": EPOCH,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + (extra_env or []),
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": EPOCH, "created_by": "make-test-images layer %d" % i} for i in range(len(diff_ids))],
    }
    if variant:
        cfg["variant"] = variant
    return json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()


def gz_layers(lay, seed, n, media_type):
    """n small gzip'd tar layers; returns (layer descriptors, diff_ids)."""
    descs, diff_ids = [], []
    for i in range(n):
        raw = small_tar("%s/layer%d" % (seed, i), nfiles=2 + i)
        gz = gzip_bytes(raw)
        diff_ids.append(sha256(raw))
        descs.append({"mediaType": media_type, "digest": lay.put(gz), "size": len(gz)})
    return descs, diff_ids


def image_manifest(lay, seed, nlayers, arch="amd64", variant=None, docker=False, indent=None):
    """Write layers+config+manifest for one image, return the manifest descriptor."""
    layer_mt, cfg_mt, man_mt = (D2_LAYER_GZ, D2_CONFIG, D2_MANIFEST) if docker else (OCI_LAYER_GZ, OCI_CONFIG, OCI_MANIFEST)
    layers, diff_ids = gz_layers(lay, seed, nlayers, layer_mt)
    cfg = config_json(arch, "linux", diff_ids, variant, ["BERTH_TEST_SEED=" + seed])
    man = {
        "schemaVersion": 2,
        "mediaType": man_mt,
        "config": {"mediaType": cfg_mt, "digest": lay.put(cfg), "size": len(cfg)},
        "layers": layers,
    }
    if not docker:
        man["annotations"] = {"org.opencontainers.image.created": EPOCH, "org.example.berth.seed": seed}
    data = json.dumps(man, indent=indent).encode()
    return {"mediaType": man_mt, "digest": lay.put_manifest(data), "size": len(data)}


def make_multi(out):
    lay = Layout(os.path.join(out, "multi"))
    # Pretty-printed on purpose: a registry must hand back the exact bytes, whitespace included.
    desc = image_manifest(lay, "multi", 4, indent=3)
    lay.write_index(desc)
    return desc["digest"]


def make_big(out, size):
    lay = Layout(os.path.join(out, "big"))
    tmp = os.path.join(lay.path, "big-layer.tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.GNU_FORMAT) as tf:
        tf.addfile(tarinfo("big.bin", size), PrngReader("big", size))
    layer_digest = lay.put_file(tmp)
    layer_size = os.path.getsize(os.path.join(lay.blobdir, layer_digest.split(":")[1]))
    # Uncompressed layer: diff_id == layer digest.
    cfg = config_json("amd64", "linux", [layer_digest])
    man = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": lay.put(cfg), "size": len(cfg)},
        "layers": [{"mediaType": OCI_LAYER_TAR, "digest": layer_digest, "size": layer_size}],
    }
    data = json.dumps(man, separators=(",", ":")).encode()
    desc = {"mediaType": OCI_MANIFEST, "digest": lay.put(data), "size": len(data)}
    lay.write_index(desc)
    return desc["digest"]


PLATFORMS = [("amd64", None), ("arm64", "v8"), ("s390x", None)]


def make_list(out, name, docker):
    lay = (DirLayout if docker else Layout)(os.path.join(out, name))
    entries = []
    platforms = PLATFORMS[:2] if docker else PLATFORMS
    for n, (arch, variant) in enumerate(platforms):
        d = image_manifest(lay, "%s/%s" % (name, arch), 2 + n, arch, variant, docker=docker)
        plat = {"architecture": arch, "os": "linux"}
        if variant:
            plat["variant"] = variant
        d["platform"] = plat
        entries.append(d)
    mt = D2_LIST if docker else OCI_INDEX
    idx = {"schemaVersion": 2, "mediaType": mt, "manifests": entries}
    data = json.dumps(idx, indent=2 if docker else None).encode()
    desc = {"mediaType": mt, "digest": lay.put_manifest(data), "size": len(data)}
    lay.write_index(desc)
    return desc["digest"]


def make_docker(out):
    lay = DirLayout(os.path.join(out, "docker"))
    desc = image_manifest(lay, "docker", 2, docker=True, indent=3)
    lay.write_index(desc)
    return desc["digest"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--big-size", type=int, default=64 << 20, help="payload bytes of the big layer (default 64 MiB)")
    ap.add_argument("--only", default="multi,big,multiarch,docker,dockerlist")
    ap.add_argument("--salt", default="", help="mixed into every seed: a different, disjoint set of images")
    a = ap.parse_args()
    global SALT
    SALT = a.salt
    makers = {
        "multi": lambda: make_multi(a.outdir),
        "big": lambda: make_big(a.outdir, a.big_size),
        "multiarch": lambda: make_list(a.outdir, "multiarch", docker=False),
        "docker": lambda: make_docker(a.outdir),
        "dockerlist": lambda: make_list(a.outdir, "dockerlist", docker=True),
    }
    os.makedirs(a.outdir, exist_ok=True)
    for name in a.only.split(","):
        if name not in makers:
            sys.exit("make-test-images: unknown image %r (known: %s)" % (name, ", ".join(makers)))
        print(name, makers[name]())


if __name__ == "__main__":
    main()
