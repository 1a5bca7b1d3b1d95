"""Shared harness for berth's black-box HTTP API tests (python3, standard library only).

Each test module gets fresh servers: the first call to ``server()`` (or ``server(delete=False)``)
in a module starts one on a free loopback port with a temporary root, and ``tearDownModule``
stops it and removes the temporary directory. Modules use it like this::

    import berthtest
    from berthtest import setUpModule, tearDownModule  # noqa: F401

    class T(berthtest.TestCase):
        def test_x(self):
            r = self.c.get("/v2/")
            self.assertStatus(r, 200)

    if __name__ == "__main__":
        berthtest.main()

Environment:
  BERTH_BIN        path of the berth binary (default: $BERTH_SRC/build/berth)
  BERTH_SRC        source tree (default: two levels above this file)
  BERTH_URL        run against an already running server (http://127.0.0.1:5000) instead of
                   starting one; tests that need a server without --delete, or the server's root
                   directory, are skipped unless BERTH_URL_NODELETE / BERTH_ROOT are also given
  BERTH_REFERENCE  set to "docker-registry" (or pass --reference on the command line) to run the
                   suite against Debian's docker-registry (CNCF Distribution 2.8) for comparison;
                   tests of things Distribution 2.8 does not implement are skipped there
  BERTH_STORAGE    passed to berth as --storage (e.g. "inmemory"); "s3" serves from the bucket
                   S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION, S3_BUCKET name (what
                   tests/fixtures/s3/rgw-test-up.sh prints), each server below its own
                   rootdirectory (tests/e2e/test_s3_suites.sh runs the suite so)
  BERTH_SKIP_TESTS lines "MODULE.CLASS.TEST reason": those tests are skipped with the reason
  BERTH_LOG        set to 1 to print each started server's log when the module ends
"""

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("BERTH_SRC") or os.path.dirname(os.path.dirname(HERE))

# Media types
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

EMPTY_JSON = b"{}"
# Distribution 2.8 answers 404 for OCI manifests (and converts schema2 to schema1) unless the
# client's Accept allows the stored type; real clients always send this list.
ACCEPT_ALL = {"Accept": ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])}

_argv_reference = "--reference" in sys.argv
if _argv_reference:
    sys.argv.remove("--reference")


def reference_mode():
    """True when the suite runs against docker-registry (Distribution 2.8) instead of berth."""
    return _argv_reference or os.environ.get("BERTH_REFERENCE", "") not in ("", "0")


def reference_deviation(reason):
    """Marks a test that docker-registry 2.8 is known to fail (reason says how it differs).
    Against the reference the test still runs, as an expected failure, so the run stays green
    while a reference that starts passing shows up as an "unexpected success"."""
    def deco(fn):
        fn.reference_deviation = reason
        if reference_mode():
            return unittest.expectedFailure(fn)
        return fn
    return deco


def berth_only(reason):
    """Skips a test against docker-registry 2.8, which lacks the feature entirely."""
    def deco(fn):
        if reference_mode():
            return unittest.skip("docker-registry 2.8: " + reason)(fn)
        return fn
    return deco


def external_mode():
    return bool(os.environ.get("BERTH_URL"))


def s3_mode():
    return os.environ.get("BERTH_STORAGE", "") == "s3"


def _skips():
    """BERTH_SKIP_TESTS as {test id: reason}."""
    out = {}
    for line in os.environ.get("BERTH_SKIP_TESTS", "").splitlines():
        parts = line.strip().split(None, 1)
        if parts and not parts[0].startswith("#"):
            out[parts[0]] = parts[1] if len(parts) > 1 else "skipped by BERTH_SKIP_TESTS"
    return out


_SKIPS = _skips()


S3_CHUNKSIZE = 5 << 20  # the smallest part S3 takes: uploads of a few MiB already span parts


def s3_storage_yaml(rootdirectory, rgw=None, endpoint=None, chunksize=S3_CHUNKSIZE):
    """The storage section's first lines for the S3 bucket rgw names (start_rgw's dict; default
    the environment's, see BERTH_STORAGE above), reached at endpoint (default its S3_ENDPOINT,
    e.g. a proxy in front of it), in parts of chunksize (None: the driver's default, 10 MiB).
    A config may go on with more storage keys, two spaces deep."""
    e = rgw or os.environ
    return ("storage:\n  s3:\n"
            "    accesskey: %s\n    secretkey: %s\n    region: %s\n"
            "    regionendpoint: %s\n    bucket: %s\n    rootdirectory: %s\n"
            % (e["S3_ACCESS_KEY"], e["S3_SECRET_KEY"], e["S3_REGION"], endpoint or e["S3_ENDPOINT"],
               e["S3_BUCKET"], rootdirectory)
            + ("    chunksize: %d\n" % chunksize if chunksize else ""))


def s3_config(rootdirectory, rgw=None, endpoint=None, chunksize=S3_CHUNKSIZE, accesslog=True,
              delete=False, redirect=False, cache=None, purging=True, storage="",
              addr="127.0.0.1:%(port)d", debug=False, http="", more=""):
    """A whole config (log level warn) of berth (or Distribution) on the S3 bucket below
    rootdirectory (rgw, endpoint, chunksize: s3_storage_yaml's), each other key as asked:
    accesslog False turns the access lines off; delete enables deletes; redirect False serves
    blobs (storage.redirect.disable), True answers blob GETs with S3 URLs; cache names the blob
    descriptor cache (inmemory, redis); purging False disables upload purging (True leaves the
    default); storage goes on with more storage keys (two spaces deep). The http section: addr
    (None: none, for --addr), the debug server's metrics on 127.0.0.1:%(debugport)d with debug,
    then http's own keys (two spaces deep); more comes last (top-level sections). %(port)d and
    %(debugport)d are filled in by start_s3_module_berth or start_with_config (or pass addr
    with the port in it)."""
    text = "version: 0.1\nlog:\n  level: warn\n"
    if not accesslog:
        text += "  accesslog:\n    disabled: true\n"
    text += s3_storage_yaml(rootdirectory, rgw, endpoint, chunksize)
    if delete:
        text += "  delete:\n    enabled: true\n"
    text += "  redirect:\n    disable: %s\n" % ("false" if redirect else "true")
    if cache:
        text += "  cache:\n    blobdescriptor: %s\n" % cache
    if not purging:
        text += "  maintenance:\n    uploadpurging:\n      enabled: false\n"
    text += storage
    if addr:
        text += "http:\n  addr: %s\n" % addr
        if debug:
            text += "  debug:\n    addr: 127.0.0.1:%(debugport)d\n    prometheus:\n      enabled: true\n"
        text += http
    return text + more


_s3_roots = [0]


def read_until_closed(sock):
    """Everything the server sends on sock until it closes the connection (or the socket's
    timeout passes, or it resets)."""
    chunks = []
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                break
            chunks.append(b)
    except (socket.timeout, ConnectionResetError):
        pass
    return b"".join(chunks)


def digest(data, alg="sha256"):
    return alg + ":" + hashlib.new(alg, data).hexdigest()


def descriptor(data, media_type, **extra):
    d = {"mediaType": media_type, "digest": digest(data), "size": len(data)}
    d.update(extra)
    return d


def canonical(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()


# ---------------------------------------------------------------------------------------------
# Servers


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One running registry: berth (default), docker-registry (reference mode) or external."""

    def __init__(self, delete=True):
        self.delete = delete
        self.proc = None
        self.tmp = None      # parent temp dir: holds root/ and the log, nothing else
        self.root = None     # the --root directory (None for an external server)
        self.log_path = None
        self.url = None
        self.s3_root = None  # s3 mode: this server's rootdirectory in the bucket
        self.kind = "reference" if reference_mode() else ("external" if external_mode() else "berth")

    # -- lifecycle --
    def start(self):
        if self.kind == "external":
            self.url = os.environ["BERTH_URL"] if self.delete else os.environ.get("BERTH_URL_NODELETE")
            if not self.url:
                raise unittest.SkipTest("BERTH_URL_NODELETE not set: no server without --delete")
            self.root = os.environ.get("BERTH_ROOT") if self.delete else None
            self._wait_ready(None)
            return self
        self.tmp = tempfile.mkdtemp(prefix="berth-api-")
        self.root = os.path.join(self.tmp, "root")
        os.mkdir(self.root)
        self.log_path = os.path.join(self.tmp, "server.log")
        last_err = None
        for _ in range(5):
            port = _free_port()
            self.url = "http://127.0.0.1:%d" % port
            if self.kind == "reference":
                cmd = self._reference_cmd(port)
            else:
                cmd = self._berth_cmd(port)
            logf = open(self.log_path, "ab")
            self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
            logf.close()
            try:
                self._wait_ready(self.proc)
                return self
            except RuntimeError as e:  # port taken between probe and bind, or a crash: retry
                last_err = e
                self._kill()
        raise RuntimeError("could not start server: %s\n--- log ---\n%s" % (last_err, self.log()))

    def _berth_cmd(self, port):
        binary = os.environ.get("BERTH_BIN") or os.path.join(SRC, "build", "berth")
        if not os.path.exists(binary):
            raise RuntimeError("berth binary not found at %s (set BERTH_BIN)" % binary)
        if s3_mode():
            cmd = [binary, "serve", self._s3_config(), "--addr", "127.0.0.1:%d" % port]
        else:
            cmd = [binary, "serve", "--addr", "127.0.0.1:%d" % port, "--root", self.root]
        if self.delete:
            cmd.append("--delete")
        if os.environ.get("BERTH_STORAGE") and not s3_mode():
            cmd += ["--storage", os.environ["BERTH_STORAGE"]]
        return cmd

    def _s3_config(self):
        """A config on the S3 bucket of the environment, below a rootdirectory of this server's
        own (kept across restarts)."""
        if self.s3_root is None:
            _s3_roots[0] += 1
            self.s3_root = "/api-%d%s-%d" % (os.getpid(), _RUN_TOKEN, _s3_roots[0])
        cfg = os.path.join(self.tmp, "config.yml")
        with open(cfg, "w") as f:
            f.write(s3_config(self.s3_root, addr=None))
        return cfg

    def _reference_cmd(self, port):
        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        cfg = os.path.join(self.tmp, "config.yml")
        with open(cfg, "w") as f:
            f.write("version: 0.1\n"
                    "log:\n  level: warn\n"
                    "storage:\n  filesystem:\n    rootdirectory: %s\n"
                    "  delete:\n    enabled: %s\n"
                    # a fixed secret keeps upload URLs valid across a restart
                    "http:\n  addr: 127.0.0.1:%d\n  secret: berth-api-tests\n"
                    # accept foreign/non-distributable layers that carry URLs, as berth does
                    "validation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\n"
                    % (self.root, "true" if self.delete else "false", port))
        return [binary, "serve", cfg]

    def _wait_ready(self, proc, timeout=15.0):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError("server exited with status %s" % proc.returncode)
            try:
                r = Client(self.url).get("/v2/", timeout=2)
                if r.status == 200:
                    # a server that failed to bind exits at once: make sure the answer was ours
                    # and not another test process's server on a reused port
                    if proc is not None:
                        time.sleep(0.05)
                        if proc.poll() is not None:
                            raise RuntimeError("server exited with status %s" % proc.returncode)
                    return
                last = "GET /v2/ -> %d" % r.status
            except OSError as e:
                last = str(e)
            time.sleep(0.05)
        raise RuntimeError("server not ready after %.0fs (%s)" % (timeout, last))

    def restart(self):
        """Stops the process and starts a new one on the same root (and a new port)."""
        if self.kind == "external":
            raise unittest.SkipTest("cannot restart an external server")
        complaint = self._kill()
        if complaint:
            _crashed.append("before restart: %s server %s\n%s" % (self.kind, complaint,
                                                                  self.log()[-4000:]))
        last_err = None
        for _ in range(5):
            port = _free_port()
            self.url = "http://127.0.0.1:%d" % port
            cmd = self._reference_cmd(port) if self.kind == "reference" else self._berth_cmd(port)
            logf = open(self.log_path, "ab")
            self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
            logf.close()
            try:
                self._wait_ready(self.proc)
                return self
            except RuntimeError as e:
                last_err = e
                self._kill()
        raise RuntimeError("could not restart server: %s\n%s" % (last_err, self.log()[-3000:]))

    def alive(self):
        return self.proc is None or self.proc.poll() is None

    def _kill(self):
        """Stops the process; returns a complaint (str) when it did not stop cleanly."""
        if self.proc is None:
            return None
        complaint = None
        if self.proc.poll() is not None:
            complaint = "exited by itself with status %s" % self.proc.returncode
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=10)
                # a clean shutdown is exit 0 (or death by the SIGTERM itself); anything else,
                # e.g. LeakSanitizer's 23 in a sanitizer build, is worth a look
                if rc not in (0, -signal.SIGTERM):
                    complaint = "exited with status %s after SIGTERM" % rc
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                complaint = "did not stop within 10 s of SIGTERM"
        self.proc = None
        return complaint

    def log(self):
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        complaint = self._kill()
        log = self.log()
        if os.environ.get("BERTH_LOG") and self.log_path:
            sys.stderr.write("--- %s log (%s) ---\n%s\n" % (self.kind, self.url, log))
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        if complaint:
            return "%s server (delete=%s) %s\n--- log tail ---\n%s" % (
                self.kind, self.delete, complaint, log[-4000:])
        return None

    def client(self):
        return Client(self.url)


_RUN_TOKEN = "-" + os.urandom(3).hex()
_servers = {}
_crashed = []


def server(delete=True):
    """The module's server with (delete=True) or without (delete=False) deletion enabled."""
    key = bool(delete)
    s = _servers.get(key)
    if s is None:
        s = Server(delete=key).start()
        _servers[key] = s
    return s


def setUpModule():
    pass


def tearDownModule():
    for s in list(_servers.values()):
        complaint = s.stop()
        if complaint:
            _crashed.append(complaint)
    _servers.clear()


# ---------------------------------------------------------------------------------------------
# HTTP client


class Response:
    def __init__(self, method, path, status, reason, headers, body, req_headers=None, req_body=None):
        self.method = method
        self.path = path
        self.status = status
        self.reason = reason
        self.headers = headers  # http.client.HTTPMessage: case-insensitive .get()
        self.body = body
        self.req_headers = req_headers or {}
        self.req_body = req_body

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def error_codes(self):
        try:
            return [e.get("code") for e in self.json().get("errors", [])]
        except Exception:
            return []

    def describe(self, max_body=600):
        """One request/response exchange, for assertion messages."""
        hdrs = "".join("  %s: %s\n" % (k, v) for k, v in self.headers.items())
        body = self.body[:max_body]
        if self.method == "HEAD":
            body = b""
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            body = repr(body)
        reqh = "".join("  %s: %s\n" % (k, v) for k, v in self.req_headers.items())
        rb = ""
        if self.req_body is not None and not hasattr(self.req_body, "__next__"):
            rb = "  <%d bytes body>\n" % len(self.req_body)
        path = self.path if len(self.path) <= 300 else self.path[:300] + "...(%d chars)" % len(self.path)
        return ("\n>>> %s %s\n%s%s<<< %d %s\n%s  %s%s\n" %
                (self.method, path, reqh, rb, self.status, self.reason, hdrs, body,
                 "..." if len(self.body) > max_body else ""))

    def __repr__(self):
        return "<Response %s %s -> %d>" % (self.method, self.path, self.status)


class Client:
    """A tiny HTTP/1.1 client: a fresh connection per request, paths sent verbatim."""

    def __init__(self, base_url):
        u = urllib.parse.urlsplit(base_url)
        self.base = base_url.rstrip("/")
        self.host = u.hostname
        self.port = u.port or 80

    def request(self, method, path, body=None, headers=None, timeout=20, chunked=False):
        headers = dict(headers or {})
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            send_err = None
            try:
                if chunked:
                    headers.setdefault("Transfer-Encoding", "chunked")
                    conn.request(method, path, body=body, headers=headers, encode_chunked=True)
                else:
                    if body is None and method in ("POST", "PUT", "PATCH"):
                        body = b""
                    conn.request(method, path, body=body, headers=headers)
            except (BrokenPipeError, ConnectionResetError) as e:
                # The server answered (e.g. 413) and closed before reading the whole body:
                # its response may still be readable.
                send_err = e
            try:
                r = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                if send_err is not None:
                    raise ConnectionError("%s %s: connection closed while sending the body (%s) "
                                          "and no response could be read (%s)"
                                          % (method, path, send_err, e))
                raise
            try:
                data = r.read()
            except http.client.IncompleteRead as e:  # Content-Length larger than the body sent
                data = e.partial
            return Response(method, path, r.status, r.reason, r.headers, data, headers,
                            None if chunked else body)
        finally:
            conn.close()

    def session(self, timeout=20):
        """A client that keeps one HTTP/1.1 connection open across requests (like real clients).
        http.client reconnects by itself after a response that says Connection: close."""
        return Session(self.host, self.port, timeout)

    def raw(self, data, timeout=10):
        """Sends raw bytes and returns (status, raw response bytes) read until the server closes;
        send "Connection: close". For requests http.client refuses to build or hides."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as s:
            s.sendall(data)
            resp = read_until_closed(s)
        m = re.match(rb"HTTP/1\.[01] (\d{3})", resp)
        return (int(m.group(1)) if m else 0), resp

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body=body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body=body, **kw)

    # -- Location handling --
    def resolve(self, location, extra_query=None):
        """Turns a Location header (absolute or relative) into a request path on this server,
        keeping its query and appending extra_query (a dict)."""
        assert location, "empty Location"
        u = urllib.parse.urlsplit(urllib.parse.urljoin(self.base + "/", location))
        path = u.path
        q = u.query
        if extra_query:
            add = urllib.parse.urlencode(extra_query)
            q = q + "&" + add if q else add
        return path + ("?" + q if q else "")

    # -- high-level helpers (fail loudly: used for setup, not for the behaviour under test) --
    def start_upload(self, repo):
        r = self.post("/v2/%s/blobs/uploads/" % repo, headers={"Content-Length": "0"})
        if r.status != 202:
            raise AssertionError("could not start an upload in %s" % repo + r.describe())
        return r

    def push_blob(self, repo, data, alg="sha256"):
        """POST then PUT (monolithic); returns the blob's digest."""
        d = digest(data, alg)
        r = self.start_upload(repo)
        r = self.put(self.resolve(r.header("Location"), {"digest": d}), data,
                     headers={"Content-Type": "application/octet-stream"})
        if r.status != 201:
            raise AssertionError("could not push blob %s to %s" % (d, repo) + r.describe())
        return d

    def put_manifest(self, repo, ref, body, media_type=OCI_MANIFEST):
        if not isinstance(body, bytes):
            body = canonical(body)
        h = {"Content-Type": media_type} if media_type else {}
        return self.put("/v2/%s/manifests/%s" % (repo, ref), body, headers=h)

    def push_manifest(self, repo, ref, body, media_type=OCI_MANIFEST):
        if not isinstance(body, bytes):
            body = canonical(body)
        r = self.put_manifest(repo, ref, body, media_type)
        if r.status != 201:
            raise AssertionError("could not push manifest %s:%s" % (repo, ref) + r.describe())
        return digest(body)

    def push_image(self, repo, tag=None, layers=1, seed="", media_type=OCI_MANIFEST,
                   extra=None):
        """Pushes a config, `layers` layers and an image manifest (OCI or Docker schema2) and
        tags it (or pushes it by digest when tag is None). Returns a dict with the bytes."""
        docker = media_type == DOCKER_MANIFEST
        config = canonical({"architecture": "amd64", "os": "linux", "seed": seed or repo,
                            "rootfs": {"type": "layers", "diff_ids": []}})
        self.push_blob(repo, config)
        lays = []
        for i in range(layers):
            data = ("layer %d of %s %s " % (i, repo, seed)).encode() * 7
            self.push_blob(repo, data)
            lays.append(descriptor(data, DOCKER_LAYER if docker else OCI_LAYER))
        m = {"schemaVersion": 2, "mediaType": media_type,
             "config": descriptor(config, DOCKER_CONFIG if docker else OCI_CONFIG),
             "layers": lays}
        if extra:
            m.update(extra)
        body = canonical(m)
        d = self.push_manifest(repo, tag or digest(body), body, media_type)
        return {"manifest": body, "digest": d, "config": config, "layers": lays,
                "media_type": media_type, "obj": m}


class Session:
    def __init__(self, host, port, timeout):
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self.connects = 0

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        if self.conn.sock is None:
            self.connects += 1
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        return Response(method, path, r.status, r.reason, r.headers, data, headers, body)

    def close(self):
        self.conn.close()


# ---------------------------------------------------------------------------------------------
# TestCase base


class TestCase(unittest.TestCase):
    """Gives self.c (a client of the module's --delete server) and assertion helpers whose
    messages show the whole exchange."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.srv = server(delete=True)
        cls.c = cls.srv.client()

    def setUp(self):
        mod = sys.modules.get(type(self).__module__)
        name = os.path.splitext(os.path.basename(getattr(mod, "__file__", "") or ""))[0]
        why = _SKIPS.get("%s.%s.%s" % (name, type(self).__name__, self._testMethodName))
        if why:
            self.skipTest(why)
        if not self.srv.alive():
            self.fail("the server is no longer running\n" + self.srv.log()[-3000:])

    # Unique repository names per test keep tests independent within one server.
    _counter = [0]

    def repo(self, prefix="t"):
        self._counter[0] += 1
        name = re.sub(r"[^a-z0-9]+", "-", self._testMethodName.lower()).strip("-")[:60]
        # against a long-lived external server, keep names unique across runs
        run = _RUN_TOKEN if external_mode() else ""
        return "%s/%s%s-%d" % (prefix, name, run, self._counter[0])

    def skip_if_reference(self, why):
        if reference_mode():
            self.skipTest("docker-registry 2.8: " + why)

    def assertStatus(self, r, expected, msg=""):
        ok = r.status in expected if isinstance(expected, (tuple, list, set)) else r.status == expected
        if not ok:
            self.fail("expected status %s, got %d%s%s" % (expected, r.status,
                                                          (" (" + msg + ")") if msg else "",
                                                          r.describe()))

    def assertError(self, r, status, codes, msg=""):
        """status: int or tuple; codes: str or tuple of acceptable error codes (any one present)."""
        self.assertStatus(r, status, msg)
        if isinstance(codes, str):
            codes = (codes,)
        if r.method == "HEAD" or not codes:
            return
        try:
            doc = r.json()
        except Exception:
            self.fail("error body is not JSON" + r.describe())
        self.assertIsInstance(doc.get("errors"), list, "no errors array" + r.describe())
        self.assertTrue(doc["errors"], "empty errors array" + r.describe())
        for e in doc["errors"]:
            self.assertIsInstance(e, dict, r.describe())
            self.assertRegex(e.get("code", ""), r"^[A-Z_]+$", "bad code" + r.describe())
            if "message" in e:
                self.assertIsInstance(e["message"], str, r.describe())
        got = [e.get("code") for e in doc["errors"]]
        if not set(got) & set(codes):
            self.fail("expected error code in %s, got %s%s" % (list(codes), got, r.describe()))

    def assertHeader(self, r, name, expected=None, msg=""):
        v = r.header(name)
        if v is None:
            self.fail("missing header %s%s%s" % (name, (" (" + msg + ")") if msg else "", r.describe()))
        if expected is not None and v != expected:
            self.fail("header %s: expected %r, got %r%s" % (name, expected, v, r.describe()))
        return v

    def assertNoBody(self, r):
        self.assertEqual(r.body, b"", "HEAD/204/304 response has a body" + r.describe())


# ---------------------------------------------------------------------------------------------
# Ops helpers: berth run with any command line (a config file, REGISTRY_* variables, a cwd),
# for the tests of `berth serve` as an operator runs it (tests/api/test_ops_*.py).


def berth_bin():
    b = os.environ.get("BERTH_BIN") or os.path.join(SRC, "build", "berth")
    if not os.path.exists(b):
        raise RuntimeError("berth binary not found at %s (set BERTH_BIN)" % b)
    return b


def free_port():
    """A loopback TCP port that was free a moment ago."""
    return _free_port()


def clean_env(extra=None):
    """os.environ without REGISTRY_* variables (berth reads them as configuration), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(extra or {})
    return env


def _die_with_parent():
    """preexec_fn: the child gets SIGTERM if the test process dies first (PR_SET_PDEATHSIG), so
    no server outlives a test killed by a CTest timeout."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except Exception:
        pass


def run_berth(args, env=None, cwd=None, timeout=15):
    """Runs `berth ARGS...` to completion (env: extra variables over clean_env()). Returns a
    subprocess.CompletedProcess with text stdout and stderr."""
    return subprocess.run([berth_bin()] + list(args), env=clean_env(env), cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_die_with_parent)


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def wait_until(fn, timeout=5.0, interval=0.05):
    """Polls fn() until it returns something true; returns that, or the last value on timeout."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() >= deadline:
            return v
        time.sleep(interval)


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def keepalive_after_ping(port, timeout=10):
    """A raw connection that has had one GET /v2/ answered and stays open: (socket, answer)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
    resp = b""
    while not resp.endswith(b"{}"):
        b = s.recv(65536)
        if not b:
            s.close()
            raise ConnectionError("closed before the answer: %r" % resp[:200])
        resp += b
    return s, resp


class Spawned:
    """One berth process started by spawn_berth(). stop() sends a signal and reaps it; kill()
    is for cleanups. .port is its main port, .url its base URL (http:// even with TLS)."""

    def __init__(self, proc, port, log_path, argv):
        self.proc = proc
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.log_path = log_path
        self.argv = argv

    def client(self):
        return Client(self.url)

    def alive(self):
        return self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self):
        return [l for l in self.log().split("\n") if l]

    def wait_log(self, pattern, timeout=5.0):
        """The first log line matching the regex `pattern`, waiting up to timeout; None if none."""
        rx = re.compile(pattern)
        return wait_until(lambda: next((l for l in self.log_lines() if rx.search(l)), None),
                          timeout)

    def send(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """The exit status, or None if still running after timeout seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signals and waits; the exit status (killed with SIGKILL after timeout: -9)."""
        self.send(sig)
        rc = self.wait(timeout)
        if rc is None:
            self.kill()
            rc = self.proc.returncode
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self in _spawned:
            _spawned.remove(self)

    def describe(self):
        return "berth %s\n--- log tail ---\n%s" % (" ".join(self.argv), self.log()[-3000:])


_spawned = []
_spawn_count = [0]


def spawn_berth(make, tmp, cwd=None, attempts=5, ready_timeout=10.0):
    """Starts berth on a free loopback port and waits until that port accepts connections.
    make(port) returns (args after the binary, extra environment variables over clean_env());
    it is called again with a new port when the port was taken (berth logs "cannot listen").
    The log (stdout and stderr) goes to a file in tmp. Raises RuntimeError, with the log, when
    berth exits before it is ready. Stop leftovers with kill_spawned() in tearDownModule."""
    last = ""
    for _ in range(attempts):
        port = _free_port()
        args, env = make(port)
        _spawn_count[0] += 1
        log_path = os.path.join(tmp, "berth-%d-%d.log" % (_spawn_count[0], port))
        argv = [berth_bin()] + list(args)
        with open(log_path, "ab") as logf:
            proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=clean_env(env), cwd=cwd,
                                    preexec_fn=_die_with_parent)
        s = Spawned(proc, port, log_path, argv)
        _spawned.append(s)
        deadline = time.time() + ready_timeout
        while time.time() < deadline and proc.poll() is None and not port_open(port):
            time.sleep(0.02)
        if proc.poll() is None and port_open(port):
            time.sleep(0.05)  # a berth that lost the port to another process exits at once
            if proc.poll() is None:
                return s
        last = s.describe()
        s.kill()
        if "cannot listen" not in s.log():
            break
    raise RuntimeError("berth did not start: %s" % last)


def kill_spawned():
    for s in list(_spawned):
        s.kill()


def stop_spawned(s):
    """Stops a spawned berth with SIGTERM, as an operator would. An exit status other than 0,
    e.g. LeakSanitizer's 23 in a sanitizer build, is reported like the module servers' (main()
    fails the run). A process that already exited was checked by its test."""
    if not s.alive():
        s.kill()
        return
    rc = s.stop(signal.SIGTERM, timeout=10)
    if s in _spawned:
        _spawned.remove(s)
    if rc not in (0, -signal.SIGTERM):
        _crashed.append("berth exited with status %s after SIGTERM: %s" % (rc, s.describe()))


class OpsTestCase(TestCase):
    """For tests that start their own berth processes with spawn_berth(): no module server, a
    temp dir per class (cls.tmp), every process it started killed when the class ends. Skipped
    against the reference (these test berth's own command line)."""

    @classmethod
    def setUpClass(cls):
        if reference_mode():
            raise unittest.SkipTest("tests of the berth binary itself")
        cls.tmp = tempfile.mkdtemp(prefix="berth-ops-")

    @classmethod
    def tearDownClass(cls):
        for s in list(_spawned):
            stop_spawned(s)
        if not os.environ.get("BERTH_KEEP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        pass

    def spawn(self, make, **kw):
        """spawn_berth(make, self.tmp), stopped (stop_spawned) when the test ends."""
        s = spawn_berth(make, self.tmp, **kw)
        self.addCleanup(stop_spawned, s)
        return s

    def path(self, *parts):
        """A path under the class's temp dir, its parent directory created."""
        p = os.path.join(self.tmp, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p


def main():
    """unittest.main with the normal summary; exits 0 only when everything passed."""
    prog = unittest.main(module="__main__", verbosity=2, exit=False)
    ok = prog.result.wasSuccessful()
    if _crashed:
        for c in _crashed:
            sys.stderr.write("SERVER PROBLEM: " + c + "\n")
        ok = False
    r = prog.result
    if r.expectedFailures:
        sys.stdout.write("%d expected failures (known differences of the reference)\n"
                         % len(r.expectedFailures))
    sys.stdout.write("%d passed, %d failed, %d skipped\n" % (
        r.testsRun - len(r.failures) - len(r.errors) - len(r.skipped) - len(r.expectedFailures)
        - len(r.unexpectedSuccesses),
        len(r.failures) + len(r.errors) + len(_crashed) + len(r.unexpectedSuccesses),
        len(r.skipped)))
    sys.exit(0 if ok else 1)


def serve_config(cfg, port, log_path, env=None, attempts=200, what="berth", host="127.0.0.1"):
    """`berth serve cfg` (its address host:port), stdout and stderr into log_path, with env
    (default: this process's), waiting until GET /v2/ answers 200, polling attempts times 20 ms
    apart. Returns (process, client); raises RuntimeError("<what> did not start" and the log),
    the process killed, when it exits or does not answer."""
    binary = os.environ.get("BERTH_BIN") or os.path.join(SRC, "build", "berth")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([binary, "serve", cfg], stdout=log, stderr=subprocess.STDOUT, env=env)
    client = Client("http://%s:%d" % (host, port))
    for _ in range(attempts):
        if proc.poll() is not None:
            break
        try:
            if client.get("/v2/").status == 200:
                return proc, client
        except OSError:
            pass
        time.sleep(0.02)
    proc.kill()
    proc.wait(10)
    with open(log_path, errors="replace") as f:
        raise RuntimeError("%s did not start:\n%s" % (what, f.read()))


def stop_serve(proc, log_path, timeout=30):
    """SIGTERM (SIGKILL after timeout) and reap: None when berth exited 0, else a failure
    message with the tail of its log (a sanitizer's report, a crash)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.returncode == 0:
        return None
    with open(log_path, errors="replace") as f:
        return "berth exited with status %s:\n%s" % (proc.returncode, f.read()[-6000:])


def start_with_config(config_text, prefix, tmp=None, host="127.0.0.1"):
    """berth serve with config_text (%(root)s, %(port)d and %(debugport)d filled in) in tmp, a
    new temp dir named with prefix unless given (a restart on the same root), listening on host.
    Returns (process, client, tmp); the caller stops the process and removes tmp."""
    tmp = tmp or tempfile.mkdtemp(prefix=prefix)
    port = _free_port()
    cfg = os.path.join(tmp, "config.yml")
    with open(cfg, "w") as f:
        f.write(config_text % {"root": os.path.join(tmp, "root"), "port": port,
                               "debugport": _free_port()})
    try:
        proc, client = serve_config(cfg, port, os.path.join(tmp, "log"), host=host)
    except RuntimeError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return proc, client, tmp


S3_FIXTURES = os.path.join(SRC, "tests", "fixtures", "s3")


def start_rgw(tmp, bucket="berth"):
    """Ceph's RADOS Gateway on loopback in tmp/rgw with bucket (tests/fixtures/s3/rgw-test-up.sh):
    {S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION, S3_BUCKET}. stop_rgw(tmp) stops it."""
    out = subprocess.run([os.path.join(S3_FIXTURES, "rgw-test-up.sh"), os.path.join(tmp, "rgw"), bucket],
                         check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def stop_rgw(tmp):
    subprocess.run([os.path.join(S3_FIXTURES, "rgw-down.sh"), os.path.join(tmp, "rgw")], capture_output=True)


def stop_s3_module(state, helpers=()):
    """The end of a module on RGW: stops the berths in state["procs"] ((process, name) pairs,
    each logging to tmp/name.log), the helper processes under the keys given, RGW and
    state["tmp"]; raises with every berth that did not exit 0 (a sanitizer's report, a crash)."""
    failures = []
    for proc, name in state.pop("procs", []):
        failure = stop_serve(proc, os.path.join(state["tmp"], name + ".log"))
        if failure:
            failures.append("%s: %s" % (name, failure))
    for key in helpers:
        proc = state.pop(key, None)
        if proc:
            proc.kill()
            proc.wait()
    tmp = state.pop("tmp", None)
    if tmp:
        stop_rgw(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        raise AssertionError("\n".join(failures))


def start_s3_module_berth(state, name, config, env=None):
    """berth serve for a module on RGW: config (%(port)d and %(debugport)d filled in here) in
    state["tmp"]/name.yml, logging to name.log, registered in state["procs"] for stop_s3_module;
    env is added to this process's (AWS_CA_BUNDLE left out). Returns the client, its .debug the
    debug server's."""
    tmp = state["tmp"]
    port, debugport = _free_port(), _free_port()
    cfg = os.path.join(tmp, name + ".yml")
    with open(cfg, "w") as f:
        f.write(config % {"port": port, "debugport": debugport})
    run_env = dict(os.environ, **(env or {}))
    run_env.pop("AWS_CA_BUNDLE", None)
    proc, client = serve_config(cfg, port, os.path.join(tmp, name + ".log"), run_env, attempts=500,
                                what="berth on S3")
    state.setdefault("procs", []).append((proc, name))
    client.debug = Client("http://127.0.0.1:%d" % debugport)
    return client


def start_s3_faultproxy(state, key, upstream, args=()):
    """tests/fixtures/s3/faultproxy.py in front of upstream for a module on RGW, with no faults
    unless args ask for them (its --log-file, --cut-after, ...): its process in state[key] (for
    stop_s3_module's helpers), its port file in state["tmp"]. Returns its URL."""
    port_file = os.path.join(state["tmp"], key + ".port")
    proc = state[key] = subprocess.Popen(
        ["python3", os.path.join(S3_FIXTURES, "faultproxy.py"), "--upstream", upstream, "--every", "0",
         "--port-file", port_file, "--max-seconds", "600"] + list(args))
    return "http://127.0.0.1:%d" % wait_port_file(port_file, proc, "faultproxy.py")


def logged_requests(log, action):
    """The requests faultproxy.py --log-file log received during action(): (method, target)
    pairs."""
    start = os.path.getsize(log) if os.path.exists(log) else 0
    action()
    with open(log) as f:
        f.seek(start)
        return [tuple(line.split(" ", 1)) for line in f.read().splitlines()]


def wait_port_file(path, proc, what):
    """The port a fixture (faultproxy.py, latencyproxy.py) writes into path once it listens;
    RuntimeError when proc exits first or it takes over 5 s."""
    for _ in range(500):
        if os.path.exists(path):
            with open(path) as f:
                return int(f.read())
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    raise RuntimeError("%s did not start" % what)


def start_docker_registry(root, tmp):
    """Debian's docker-registry (Distribution 2.8) serving the filesystem store at root (its
    config written in tmp), for checking that a store stays readable by Distribution. Returns
    (process, client), or (None, None) when it is not installed; the caller terminates it."""
    dist = shutil.which("docker-registry")
    if not dist:
        return None, None
    port = _free_port()
    dcfg = os.path.join(tmp, "dist.yml")
    with open(dcfg, "w") as f:
        f.write("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                "    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%d\n" % (root, port))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    proc = subprocess.Popen([dist, "serve", dcfg], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    client = Client("http://127.0.0.1:%d" % port)
    for _ in range(200):
        try:
            if client.get("/v2/").status == 200:
                break
        except OSError:
            pass
        time.sleep(0.05)
    return proc, client


def pulls_whole(c, repo, ref):
    """True if client c gets the image manifest repo:ref and every blob it names."""
    r = c.get("/v2/%s/manifests/%s" % (repo, ref), headers={"Accept": OCI_MANIFEST})
    if r.status != 200:
        return False
    m = r.json()
    for d in [m["config"]] + m["layers"]:
        if c.get("/v2/%s/blobs/%s" % (repo, d["digest"])).status != 200:
            return False
    return True
