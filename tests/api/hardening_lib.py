"""Helpers shared by the hardening tests (test_crash, test_concurrency, test_diskfull,
test_hostile, test_soak): a keep-alive registry client that pushes images with every upload
style, pullers that verify what they get, `berth fsck` runs, and /proc probes.

Python standard library only. Not a test module itself (no test_ prefix).
"""

import hashlib
import http.client
import json
import os
import random
import re
import socket
import time
import urllib.parse

import berthtest
from berthtest import read_until_closed

OCI_MANIFEST = berthtest.OCI_MANIFEST
OCI_INDEX = berthtest.OCI_INDEX
OCI_CONFIG = berthtest.OCI_CONFIG
OCI_LAYER = berthtest.OCI_LAYER
ACCEPT_ALL = berthtest.ACCEPT_ALL

UPLOAD_MODES = ("mono", "post-put", "chunked", "stream")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def det_bytes(seed, size):
    """size deterministic pseudo-random bytes for a seed (fast: sha256 counter blocks)."""
    out = bytearray()
    h = hashlib.sha256(seed.encode()).digest()
    block = h * 64  # 2 KiB
    i = 0
    while len(out) < size:
        out += hashlib.sha256(block[:32] + i.to_bytes(8, "big")).digest() * 64
        i += 1
    return bytes(out[:size])


class SharedBerth:
    """Mixin for a test class whose tests share one berth (cls.srv, started in setUpClass):
    each test first checks it is still running, and at the end it must stop cleanly on SIGTERM
    (exit 0, which also lets a sanitizer build report leaks)."""

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        log = cls.srv.describe()
        super().tearDownClass()
        if rc != 0:
            raise AssertionError("berth exited with status %s after SIGTERM\n%s" % (rc, log))

    def setUp(self):
        super().setUp()
        if not self.srv.alive():
            self.fail("berth is no longer running\n" + self.srv.describe())


class HTTPError(Exception):
    """An answer with an unexpected status."""

    def __init__(self, what, status, body=b"", headers=None):
        super().__init__("%s -> %s %s" % (what, status, body[:300]))
        self.status = status
        self.body = body
        self.headers = headers


class Registry:
    """One keep-alive HTTP/1.1 connection to a registry (reconnects after errors).
    Network failures surface as OSError / http.client.HTTPException."""

    def __init__(self, port, host="127.0.0.1", timeout=30):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = None

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def _c(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self.conn

    def request(self, method, path, body=None, headers=None):
        """(status, headers, body). Closes the connection on any error before re-raising."""
        headers = dict(headers or {})
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        try:
            c = self._c()
            try:
                c.request(method, path, body=body, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                # The server may have answered early (a refusal) and closed before reading
                # the whole body: read that answer if there is one.
                pass
            r = c.getresponse()
            data = r.read()
            if r.will_close:
                self.close()
            return r.status, r.headers, data
        except BaseException:
            self.close()
            raise

    def send_slowly(self, method, path, pieces, headers, pause=0.0):
        """Sends a body piece by piece (Content-Length from the pieces), pausing between them:
        keeps a request in flight long enough for a crash to catch it."""
        total = sum(len(p) for p in pieces)
        try:
            c = self._c()
            c.putrequest(method, path, skip_accept_encoding=True)
            for k, v in headers.items():
                c.putheader(k, v)
            c.putheader("Content-Length", str(total))
            c.endheaders()
            for p in pieces:
                c.send(p)
                if pause:
                    time.sleep(pause)
            r = c.getresponse()
            data = r.read()
            if r.will_close:
                self.close()
            return r.status, r.headers, data
        except BaseException:
            self.close()
            raise

    # -- pushing --
    @staticmethod
    def path_of(location):
        u = urllib.parse.urlsplit(location)
        return u.path + ("?" + u.query if u.query else "")

    @staticmethod
    def with_query(path, **q):
        return path + ("&" if "?" in path else "?") + urllib.parse.urlencode(q)

    def start_upload(self, repo):
        st, h, b = self.request("POST", "/v2/%s/blobs/uploads/" % repo)
        if st != 202:
            raise HTTPError("POST upload %s" % repo, st, b, h)
        return self.path_of(h["Location"])

    def die_mid_body(self, method, target, data, sent):
        """A client that sends the head of a request for data and only data[:sent] of its body,
        then dies: under TCP_CORK its close rides on its last bytes. sent >= 2 (a Range of 0-0
        means 0 or 1 byte)."""
        assert 2 <= sent < len(data)
        s = socket.create_connection((self.host, self.port), timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                   "Content-Length: %d\r\n\r\n" % (method, target, len(data))).encode() + data[:sent])
        s.close()

    def resume_after_death(self, loc, data, sent, timeout=5.0):
        """After die_mid_body: waits until the session holds exactly the sent bytes (berth has
        finished the dead request; resuming earlier would race it), then PATCHes the rest,
        retried while the dead request may still hold the session (416). Returns (status,
        headers, body, seconds from the call to the accepted PATCH)."""
        t0 = time.time()
        while True:
            st, h, b = self.request("GET", loc)
            if st != 204:
                raise HTTPError("GET upload after its client died", st, b, h)
            have = int(h["Range"].split("-")[1]) + 1 if h["Range"] != "0-0" else 0
            if have > sent:
                raise HTTPError("the upload holds %d bytes, %d were sent" % (have, sent), st, b, h)
            if have == sent:
                st, h, b = self.request("PATCH", loc, data[have:],
                                        {"Content-Range": "%d-%d" % (have, len(data) - 1)})
                if st != 416:
                    return st, h, b, time.time() - t0
            if time.time() - t0 > timeout:
                return st, h, b, time.time() - t0
            time.sleep(0.1)

    def push_blob(self, repo, data, mode="mono", chunk=None, on_location=None, pause=0.0):
        """Pushes data with one upload style; returns its digest. on_location(path, acked) is
        called with the session's URL and the bytes the registry acknowledged so far (chunked
        modes), so a caller can resume after a crash."""
        d = sha256(data)
        ct = {"Content-Type": "application/octet-stream"}
        if mode == "mono":
            st, h, b = self.request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, d), data, ct)
            if st != 201:
                raise HTTPError("POST ?digest %s" % repo, st, b, h)
            return d
        loc = self.start_upload(repo)
        if mode == "post-put":
            st, h, b = self.request("PUT", self.with_query(loc, digest=d), data, ct)
            if st != 201:
                raise HTTPError("PUT ?digest %s" % repo, st, b, h)
            return d
        chunk = chunk or max(1, len(data) // 4)
        off = 0
        if on_location:
            on_location(loc, 0)
        while off < len(data):
            piece = data[off:off + chunk]
            hdrs = dict(ct)
            if mode == "chunked":
                hdrs["Content-Range"] = "%d-%d" % (off, off + len(piece) - 1)
            if pause:
                sub = [piece[i:i + 16384] for i in range(0, len(piece), 16384)]
                st, h, b = self.send_slowly("PATCH", loc, sub, hdrs, pause)
            else:
                st, h, b = self.request("PATCH", loc, piece, hdrs)
            if st != 202:
                raise HTTPError("PATCH %s" % repo, st, b, h)
            loc = self.path_of(h["Location"])
            off += len(piece)
            rng = h.get("Range", "")
            if rng != "0-%d" % (off - 1):
                raise HTTPError("PATCH %s: Range %r after %d bytes" % (repo, rng, off), st, b, h)
            if on_location:
                on_location(loc, off)
        st, h, b = self.request("PUT", self.with_query(loc, digest=d), b"", ct)
        if st != 201:
            raise HTTPError("PUT (close) %s" % repo, st, b, h)
        return d

    def put_manifest(self, repo, ref, body, media_type=OCI_MANIFEST):
        st, h, b = self.request("PUT", "/v2/%s/manifests/%s" % (repo, ref), body,
                                {"Content-Type": media_type})
        if st != 201:
            raise HTTPError("PUT manifest %s:%s" % (repo, ref), st, b, h)
        return h.get("Docker-Content-Digest")

    # -- pulling and verifying --
    def get_blob(self, repo, d):
        st, h, b = self.request("GET", "/v2/%s/blobs/%s" % (repo, d))
        if st != 200:
            raise HTTPError("GET blob %s@%s" % (repo, d), st, b, h)
        if sha256(b) != d:
            raise AssertionError("GET blob %s@%s: %d bytes hashing to %s" % (repo, d, len(b), sha256(b)))
        return b

    def get_manifest(self, repo, ref):
        st, h, b = self.request("GET", "/v2/%s/manifests/%s" % (repo, ref), None, ACCEPT_ALL)
        if st != 200:
            raise HTTPError("GET manifest %s:%s" % (repo, ref), st, b, h)
        dh = h.get("Docker-Content-Digest")
        if dh != sha256(b):
            raise AssertionError("GET manifest %s:%s: body hashes to %s, header says %s"
                                 % (repo, ref, sha256(b), dh))
        if ":" in ref and ref != dh:
            raise AssertionError("GET manifest %s@%s returned %s" % (repo, ref, dh))
        return b

    def verify_image(self, repo, ref):
        """Fetches a manifest and every blob (children of an index too), checking each hash.
        Returns the manifest's digest."""
        body = self.get_manifest(repo, ref)
        m = json.loads(body)
        if "manifests" in m:
            for c in m["manifests"]:
                self.verify_image(repo, c["digest"])
        else:
            for desc in [m["config"]] + m.get("layers", []):
                b = self.get_blob(repo, desc["digest"])
                if len(b) != desc["size"]:
                    raise AssertionError("blob %s: %d bytes, manifest says %d"
                                         % (desc["digest"], len(b), desc["size"]))
        return sha256(body)

    def catalog(self):
        # n at the most a page holds (more is refused, as by Distribution)
        st, h, b = self.request("GET", "/v2/_catalog?n=1000")
        if st != 200:
            raise HTTPError("GET catalog", st, b, h)
        return json.loads(b)["repositories"]

    def tags(self, repo):
        st, h, b = self.request("GET", "/v2/%s/tags/list?n=100000" % repo)
        if st == 404:
            return []
        if st != 200:
            raise HTTPError("GET tags %s" % repo, st, b, h)
        return json.loads(b).get("tags") or []

    def ping(self):
        st, _, _ = self.request("GET", "/v2/")
        return st


# -- images --

def image(seed, shared=(), unique_size=2048, extra_layers=()):
    """(config bytes, [layer bytes...], manifest bytes) for an OCI image: the shared layers
    (bytes), one layer unique to the seed, and extra layers."""
    config = berthtest.canonical({"architecture": "amd64", "os": "linux", "seed": seed,
                                  "rootfs": {"type": "layers", "diff_ids": []}})
    layers = list(shared) + [det_bytes("unique " + seed, unique_size)] + list(extra_layers)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
         "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
         "layers": [{"mediaType": OCI_LAYER, "digest": sha256(l), "size": len(l)} for l in layers]}
    return config, layers, berthtest.canonical(m)


def push_image(reg, repo, tag, config, layers, manifest, modes=UPLOAD_MODES, rnd=random,
               on_location=None, pause=0.0):
    reg.push_blob(repo, config, rnd.choice(modes))
    for l in layers:
        reg.push_blob(repo, l, rnd.choice(modes), on_location=on_location, pause=pause)
    return reg.put_manifest(repo, tag, manifest)


# -- berth fsck --

FSCK_LINE = re.compile(r"^([a-z-]+) (\S+): (.*)$")


def fsck(root, repair=False, timeout=120):
    """Runs `berth fsck [--repair] ROOT`: (exit status, [(kind, path, detail)], full output)."""
    args = ["fsck"] + (["--repair"] if repair else []) + [root]
    p = berthtest.run_berth(args, timeout=timeout)
    problems = []
    for line in p.stdout.splitlines():
        if line.startswith("fsck:"):
            continue
        m = FSCK_LINE.match(line)
        problems.append((m.group(1), m.group(2), m.group(3)) if m else ("?", "", line))
    return p.returncode, problems, p.stdout + p.stderr


def assert_fsck(tc, root, allowed=(), repair=False):
    """Runs fsck and fails the test unless every problem is of an allowed kind (exit 0 when
    there are none, 1 otherwise). Returns the problems."""
    rc, problems, out = fsck(root, repair)
    bad = [p for p in problems if p[0] not in allowed]
    if bad or rc not in ((1,) if problems else (0,)):
        tc.fail("berth fsck%s %s: exit %d, unexpected problems:\n%s" %
                (" --repair" if repair else "", root, rc, out[-6000:]))
    return problems


# -- /proc probes --

def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_kib(pid):
    return proc_status(pid, "VmRSS")


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def threads(pid):
    return proc_status(pid, "Threads")


def berth_serve_args(root, port, *extra):
    return ["serve", "--addr", "127.0.0.1:%d" % port, "--root", root, "--no-access-log"] + list(extra)


def raw_exchange(port, data, timeout=10, read=True):
    """Sends raw bytes on a new connection; returns the raw answer (until close or timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass
        return read_until_closed(s) if read else b""


def status_of(raw):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    return int(m.group(1)) if m else 0


def tree_snapshot(top, skip=()):
    """{relative path: (type, size)} of everything under top except the skip
    paths (absolute)."""
    snap = {}
    skip = {os.path.abspath(s) for s in skip}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip]
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if p in skip:
                continue
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            snap[os.path.relpath(p, top)] = ("d" if n in dirnames else "f", st.st_size)
    return snap
