#!/usr/bin/env python3
"""Per-request cost of a cold pull through berth's pull-through cache (issue 18), stdlib only.

A whole skopeo pull is too noisy on a shared machine to see a few milliseconds; this makes the
requests skopeo makes for a small image, one at a time as skopeo makes them, and times each:

  (up)    straight against the upstream (Debian's docker-registry on loopback), and
  (NAME)  through a berth pull-through cache of it (each --berth BINARY; several for an A/B of
          builds), cold: a new repository (with its own new blobs) each repetition and, unless
          --reuse, a fresh berth process over an empty store (as bench's cold rows).

skopeo (containers/image) sends `Connection: close` with every request (its transport disables
keep-alive), so each request is a new TCP connection; --keepalive makes them on one connection
instead. The requests: the TLS probe skopeo makes first (a ClientHello to the plain-HTTP port,
answered 400), GET /v2/, the manifest by tag with skopeo's Accept list, each layer, then the
config (skopeo's order). Repetitions alternate which server goes first. Prints each request's
median (and quartiles) per server and berth's delta over the upstream.

  python3 bench/proxy_requests.py --berth build/berth [--berth /tmp/berth-before] [--runs 30]
"""
import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import httpc  # noqa: E402

KiB, MiB = 1 << 10, 1 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
# skopeo 1.9's Accept headers for a manifest, in its order (one header each).
SKOPEO_ACCEPT = ["application/vnd.oci.image.manifest.v1+json",
                 "application/vnd.docker.distribution.manifest.v2+json",
                 "application/vnd.docker.distribution.manifest.v1+prettyjws",
                 "application/vnd.docker.distribution.manifest.v1+json",
                 "application/vnd.docker.distribution.manifest.list.v2+json",
                 "application/vnd.oci.image.index.v1+json"]
SKOPEO_HEADERS = [("User-Agent", "skopeo/1.9.3"), ("Docker-Distribution-Api-Version", "registry/2.0"),
                  ("Accept-Encoding", "gzip")]
# The start of a TLS 1.3 ClientHello as Go sends it (skopeo tries HTTPS first): a plain-HTTP
# server answers 400 (Go's reads up to the 0x0a of its supported_groups extension).
CLIENT_HELLO = bytes.fromhex(
    "16030100de010000da0303" + "11" * 32 + "20" + "22" * 32 +
    "0016c02bc02fc02cc030c009c013c00ac014130113021303010000"
    "7b000500050100000000000a000a0008001d001700180019000b00020100000d001a0018080404030807"
    "080508060401050106010503060302010203ff01000100001200000000002b0009080304030303020301"
    "00330026002400"
    "1d0020" + "33" * 32)

# The upstream is configured as bench.py's Distribution; the cache as berth in bench's proxy rows.
CACHE_CONFIG = "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n" \
    "proxy:\n  remoteurl: http://127.0.0.1:{upstream}\n"


class Server(bench.Server):
    """bench's server (start, readiness, stop) running cmd_fn(port)."""

    def __init__(self, label, cmd_fn, work):
        self.kind = label  # names its log: WORK/LABEL.log
        super().__init__(work, None)
        self.label, self.cmd_fn = label, cmd_fn

    def cmd(self):
        return self.cmd_fn(self.port)


def make_image(sizes, seed):
    """(manifest bytes, [(digest, bytes)] of the layers then the config): new random blobs."""
    layers = [os.urandom(n) for n in sizes]
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed,
                         "rootfs": {"type": "layers", "diff_ids": [
                             "sha256:" + hashlib.sha256(b).hexdigest() for b in layers]}}).encode()

    def desc(mt, b):
        return {"mediaType": mt, "digest": "sha256:" + hashlib.sha256(b).hexdigest(), "size": len(b)}
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(OCI_CONFIG, config),
                           "layers": [desc(OCI_LAYER, b) for b in layers]}).encode()
    blobs = [("sha256:" + hashlib.sha256(b).hexdigest(), b) for b in layers + [config]]
    return manifest, blobs


def push(port, name, manifest, blobs):
    c = httpc.Conn(port)
    for digest, data in blobs:
        st, h, _ = c.request("POST", "/v2/%s/blobs/uploads/" % name)
        if st != 202:
            sys.exit("upload of %s: %d" % (name, st))
        loc = httpc.with_query(httpc.relative(h["location"]), "digest", digest)
        st, _, _ = c.request("PUT", loc, [("Content-Type", "application/octet-stream")], data)
        if st != 201:
            sys.exit("blob PUT of %s: %d" % (name, st))
    st, _, _ = c.request("PUT", "/v2/%s/manifests/v1" % name, [("Content-Type", OCI_MANIFEST)], manifest)
    if st != 201:
        sys.exit("manifest PUT of %s: %d" % (name, st))
    c.close()


def read_answer(sock, rf):
    """Reads one answer whole; (status, body length)."""
    line = rf.readline(65537)
    if not line:
        raise ConnectionError("closed before the status line")
    status = int(line.split(None, 2)[1])
    length, chunked = None, False
    while True:
        h = rf.readline(65537)
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            length = int(v.strip())
        elif k == b"transfer-encoding" and b"chunked" in v.lower():
            chunked = True
    got = 0
    if chunked:
        while True:
            n = int(rf.readline(1024).split(b";")[0].strip(), 16)
            if n == 0:
                rf.readline(8)
                break
            got += len(rf.read(n))
            rf.readline(8)
    elif length is not None:
        while got < length:
            b = rf.read(min(length - got, 1 << 20))
            if not b:
                raise ConnectionError("short body")
            got += len(b)
    else:
        got = len(rf.read())
    return status, got


class Client:
    """skopeo's connection habits: a new connection per request with `Connection: close`
    (keepalive=False), or one keep-alive connection."""

    def __init__(self, port, keepalive):
        self.port, self.keepalive = port, keepalive
        self.sock = self.rf = None

    def close(self):
        if self.sock:
            self.rf.close()
            self.sock.close()
        self.sock = self.rf = None

    def _connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Go does
        self.sock, self.rf = s, s.makefile("rb", buffering=1 << 16)

    def probe(self):
        """The TLS attempt skopeo makes first: the server's 400, then its close."""
        t0 = time.perf_counter()
        s = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(CLIENT_HELLO)
        while s.recv(65536):
            pass
        s.close()
        return time.perf_counter() - t0

    def get(self, path, headers=()):
        t0 = time.perf_counter()
        if not self.sock:
            self._connect()
        hdrs = list(SKOPEO_HEADERS) + list(headers)
        if not self.keepalive:
            hdrs.append(("Connection", "close"))
        req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n" % (
            path, self.port, "".join("%s: %s\r\n" % kv for kv in hdrs))
        self.sock.sendall(req.encode("latin-1"))
        status, n = read_answer(self.sock, self.rf)
        spent = time.perf_counter() - t0
        if not self.keepalive:
            self.close()
        if status != 200:
            raise RuntimeError("GET %s: %d" % (path, status))
        return spent, n


def pull(port, name, blobs, keepalive):
    """skopeo's requests for name:v1, in its order; {request: seconds}."""
    c = Client(port, keepalive)
    t = {"probe": c.probe()}
    t["GET /v2/"] = c.get("/v2/")[0]
    t["manifest"] = c.get("/v2/%s/manifests/v1" % name, [("Accept", a) for a in SKOPEO_ACCEPT])[0]
    for i, (digest, data) in enumerate(blobs):
        what = "config" if i == len(blobs) - 1 else "layer %d (%s)" % (i, human(len(data)))
        spent, n = c.get("/v2/%s/blobs/%s" % (name, digest))
        if n != len(data):
            raise RuntimeError("%s: %d bytes, not %d" % (what, n, len(data)))
        t[what] = spent
    c.close()
    t["total"] = sum(t.values())
    return t


def human(n):
    return "%d MiB" % (n // MiB) if n >= MiB and n % MiB == 0 else "%d KiB" % (n // KiB)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--berth", action="append", required=True, help="a berth binary (repeat for an A/B)")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--sizes", default="2097152,524288,65536", help="layer sizes in bytes (bench's small image)")
    ap.add_argument("--keepalive", action="store_true", help="one keep-alive connection, not one per request")
    ap.add_argument("--reuse", action="store_true", help="one berth process for every run, not a fresh one")
    ap.add_argument("--workdir", help="kept afterwards (default: a temporary directory, removed)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    work = args.workdir or tempfile.mkdtemp(prefix="proxy-requests-")
    os.makedirs(work, exist_ok=True)
    up_root = os.path.join(work, "upstream")

    def up_cmd(port):
        cfg = os.path.join(work, "upstream.yml")
        with open(cfg, "w") as f:
            f.write(bench.DIST_CONFIG.format(root=up_root, port=port))
        return ["docker-registry", "serve", cfg]

    up = Server("up", up_cmd, work)
    caches = []
    for i, binary in enumerate(args.berth):
        label = "berth" if len(args.berth) == 1 else "berth%d" % (i + 1)
        root = os.path.join(work, label + "-store")

        def cmd(port, binary=binary, root=root, label=label):
            cfg = os.path.join(work, label + ".yml")
            with open(cfg, "w") as f:
                f.write(CACHE_CONFIG.format(root=root, upstream=up.port))
            return [os.path.abspath(binary), "serve", cfg, "--addr", "127.0.0.1:%d" % port,
                    "--no-access-log", "--log-level", "warn"]
        caches.append((Server(label, cmd, work), root))
    servers = [up] + [s for s, _ in caches]
    results = {s.label: [] for s in servers}
    try:
        up.start()
        images = []
        for k in range(args.runs):
            manifest, blobs = make_image(sizes, k)
            name = "cold/r%d" % k
            push(up.port, name, manifest, blobs)
            images.append((name, blobs))
        subprocess.run(["sync"])
        for s, root in caches:
            if args.reuse:
                s.start()
        for k, (name, blobs) in enumerate(images):
            order = servers if k % 2 == 0 else list(reversed(servers))
            for s in order:
                cache = next((r for c, r in caches if c is s), None)
                if cache is not None and not args.reuse:
                    shutil.rmtree(cache, ignore_errors=True)
                    os.makedirs(cache)
                    s.start()
                results[s.label].append(pull(s.port, name, blobs, args.keepalive))
                if cache is not None and not args.reuse:
                    s.stop()
            print("run %d/%d done" % (k + 1, args.runs), file=sys.stderr)
    finally:
        for s in servers:
            s.stop()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    keys = list(results["up"][0].keys())
    print("\n%d runs, %s, %s; milliseconds: median (p25-p75)" % (
        args.runs, "one keep-alive connection" if args.keepalive else "a new connection per request (skopeo)",
        "one berth process" if args.reuse else "a fresh berth process per run"))
    labels = [s.label for s in servers]
    head = "| request | " + " | ".join(labels) + " | " + " | ".join(
        "%s - up (median of deltas)" % lb for lb in labels[1:]) + " |"
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for key in keys:
        cells = []
        for lb in labels:
            v = sorted(r[key] * 1000 for r in results[lb])
            q = statistics.quantiles(v, n=4) if len(v) > 1 else [v[0]] * 3
            cells.append("%.2f (%.2f-%.2f)" % (statistics.median(v), q[0], q[2]))
        for lb in labels[1:]:
            d = [(b[key] - a[key]) * 1000 for a, b in zip(results["up"], results[lb])]
            cells.append("%+.2f" % statistics.median(d))
        print("| %s | %s |" % (key, " | ".join(cells)))


if __name__ == "__main__":
    main()
