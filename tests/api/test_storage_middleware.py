"""middleware.storage (issue 17): redirect and cloudfront, as Distribution's storage middleware.

- redirect, on filesystem storage (Distribution applies it to any driver): a blob GET answers
  307 to baseurl + the blob's path in the storage; the baseurl's own path goes in front of it,
  cleaned (Distribution 3's path.Join); a HEAD is answered by berth; a blob the repository does
  not hold is 404 BLOB_UNKNOWN; storage.redirect.disable: true serves the bytes.
- Distribution 2.8.2 (Debian's docker-registry), with the same middleware on the same storage
  root, gives the very same Location for a baseurl without a path (with a path, 2.8 drops it:
  checked, so the README's note stays true).
- cloudfront, on S3 (Ceph's RADOS Gateway on loopback; skipped without radosgw): the Location is
  baseurl + the object's key in the bucket (rootdirectory included) with Expires, Signature and
  Key-Pair-Id; the policy CloudFront rebuilds from it (canned, byte for byte) verifies with the
  key pair's public key (openssl), Expires is `duration` from the request; docker-registry
  2.8.2 with the same config on the same bucket gives a URL of the same structure whose
  signature verifies with the same public key.
- ipfilteredby aws / awsregion: AWS's ranges fetched from iprangesurl (a local server here);
  a client inside them (of the regions listed; X-Forwarded-For's first address, else the peer)
  gets S3's presigned URL, any other CloudFront's; ranges that cannot be fetched leave every
  client on CloudFront, and berth starts.
- Start-up refusals that need files: an unreadable, non-RSA or encrypted private key, one line
  naming middleware.storage[0].options.privatekey, exit status 1.
"""

import base64
import http.server
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

import berthtest

BERTH = os.environ.get("BERTH_BIN") or os.path.join(berthtest.SRC, "build", "berth")
REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"

state = {}


def setUpModule():
    state["tmp"] = tempfile.mkdtemp(prefix="berth-mw-")


def tearDownModule():
    tmp = state.pop("tmp", None)
    if state.pop("rgw", None):
        berthtest.stop_rgw(tmp)
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


class Running:
    """berth serve (or docker-registry serve) on a config written from `body` (the YAML after
    `version` and `http`)."""

    def __init__(self, name, body, reference=False):
        self.port = berthtest._free_port()
        self.cfg = os.path.join(state["tmp"], name + ".yml")
        self.log_path = os.path.join(state["tmp"], name + ".log")
        with open(self.cfg, "w") as f:
            f.write("version: 0.1\nlog:\n  level: warn\nhttp:\n  addr: 127.0.0.1:%d\n"
                    "  secret: berth-api-tests\n" % self.port + body)
        cmd = [REGISTRY if reference else BERTH, "serve", self.cfg]
        env = dict(os.environ)
        env.pop("AWS_CA_BUNDLE", None)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)
        self.client = berthtest.Client("http://127.0.0.1:%d" % self.port)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited (%s):\n%s" % (cmd[0], self.proc.returncode, self.log()))
            try:
                if self.client.get("/v2/", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("%s did not start:\n%s" % (cmd[0], self.log()))

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        """SIGTERM; berth must exit 0 (a sanitizer's report would not)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_refused(name, body):
    """berth serve on a config that must be refused: (exit status, output)."""
    cfg = os.path.join(state["tmp"], name + ".yml")
    with open(cfg, "w") as f:
        f.write("version: 0.1\nhttp:\n  addr: 127.0.0.1:%d\n" % berthtest._free_port() + body)
    p = subprocess.run([BERTH, "serve", cfg], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout + p.stderr


def blob_path(digest):
    alg, hexpart = digest.split(":")
    return "/docker/registry/v2/blobs/%s/%s/%s/data" % (alg, hexpart[:2], hexpart)


def openssl(*args, **kw):
    return subprocess.run(["openssl"] + list(args), check=True, capture_output=True, **kw)


class Redirect(unittest.TestCase):

    def fs_config(self, root, baseurl, extra=""):
        return ("storage:\n  filesystem:\n    rootdirectory: %s\n%s"
                "middleware:\n  storage:\n    - name: redirect\n      options:\n"
                "        baseurl: %s\n" % (root, extra, baseurl))

    def test_location_is_baseurl_and_path(self):
        root = os.path.join(state["tmp"], "redirect-root")
        s = Running("redirect", self.fs_config(root, "https://CDN.example.com:8443/a/../b//c%20d/"))
        try:
            c = s.client
            data = b"redirected layer"
            digest = c.push_blob("mw/app", data)
            r = c.get("/v2/mw/app/blobs/" + digest)
            self.assertEqual(r.status, 307, r.describe())
            self.assertEqual(r.header("Location"),
                             "https://CDN.example.com:8443/b/c%20d" + blob_path(digest))
            # berth answers a HEAD itself, with the registry's headers
            h = c.head("/v2/mw/app/blobs/" + digest)
            self.assertEqual(h.status, 200, h.describe())
            self.assertEqual(h.header("Docker-Content-Digest"), digest)
            self.assertEqual(int(h.header("Content-Length")), len(data))
            # a blob the repository does not hold is not redirected
            r = c.get("/v2/other/blobs/" + digest)
            self.assertEqual(r.status, 404, r.describe())
            self.assertIn("BLOB_UNKNOWN", r.error_codes())
        finally:
            self.assertEqual(s.stop(), 0, s.log())

    def test_redirect_disable_serves_the_bytes(self):
        root = os.path.join(state["tmp"], "disabled-root")
        s = Running("disabled", self.fs_config(root, "https://cdn.example.com",
                                               "  redirect:\n    disable: true\n"))
        try:
            digest = s.client.push_blob("mw/app", b"served by berth")
            r = s.client.get("/v2/mw/app/blobs/" + digest)
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(r.body, b"served by berth")
            self.assertIn("changes nothing with storage.redirect.disable: true", s.log())
        finally:
            self.assertEqual(s.stop(), 0, s.log())

    @unittest.skipUnless(os.path.exists(REGISTRY), "docker-registry is not installed")
    def test_same_location_as_distribution(self):
        root = os.path.join(state["tmp"], "interop-root")
        for baseurl, same in (("https://cdn.example.com:8443", True),
                              ("http://cdn.example.com/", True),
                              ("https://cdn.example.com/layers", False)):
            body = self.fs_config(root, baseurl)
            b = Running("interop-berth", body)
            try:
                digest = b.client.push_blob("mw/interop", b"one layer, two servers " + baseurl.encode())
                ours = b.client.get("/v2/mw/interop/blobs/" + digest)
            finally:
                self.assertEqual(b.stop(), 0, b.log())
            d = Running("interop-distribution", body, reference=True)
            try:
                theirs = d.client.get("/v2/mw/interop/blobs/" + digest)
            finally:
                d.stop()
            self.assertEqual(ours.status, 307, ours.describe())
            self.assertEqual(theirs.status, 307, theirs.describe())
            if same:
                self.assertEqual(ours.header("Location"), theirs.header("Location"))
            else:
                # Distribution 2.8 drops the baseurl's path (3 keeps it, as berth does)
                self.assertEqual(ours.header("Location"), "https://cdn.example.com/layers" + blob_path(digest))
                self.assertEqual(theirs.header("Location"), "https://cdn.example.com" + blob_path(digest))


    def test_pull_through_cache_fetches_what_it_lacks(self):
        """A blob the cache has not fetched yet comes from the upstream (not a 404); once cached
        it is redirected, as Distribution's proxy serves it from its local store."""
        up = Running("upstream", "storage:\n  filesystem:\n    rootdirectory: %s\n"
                     % os.path.join(state["tmp"], "upstream-root"))
        try:
            data = b"fetched through the cache"
            digest = up.client.push_blob("mw/proxied", data)
            cache = Running("cache", self.fs_config(os.path.join(state["tmp"], "cache-root"),
                                                    "https://cdn.example.com")
                            + "proxy:\n  remoteurl: %s\n" % up.client.base)
            try:
                r = cache.client.get("/v2/mw/proxied/blobs/" + digest)
                self.assertEqual(r.status, 200, r.describe())
                self.assertEqual(r.body, data)
                deadline = time.time() + 20
                while True:  # the cache writes the blob as it streams it: wait for the link
                    r = cache.client.get("/v2/mw/proxied/blobs/" + digest)
                    if r.status == 307 or time.time() > deadline:
                        break
                    time.sleep(0.05)
                self.assertEqual(r.status, 307, r.describe())
                self.assertEqual(r.header("Location"), "https://cdn.example.com" + blob_path(digest))
            finally:
                self.assertEqual(cache.stop(), 0, cache.log())
        finally:
            self.assertEqual(up.stop(), 0, up.log())


class PrivateKeyRefusals(unittest.TestCase):

    def refused(self, keyfile, want):
        rc, out = start_refused("badkey", (
            "storage:\n  s3:\n    accesskey: a\n    secretkey: b\n    region: us-east-1\n"
            "    regionendpoint: http://127.0.0.1:1\n    bucket: x\n"
            "middleware:\n  storage:\n    - name: cloudfront\n      options:\n"
            "        baseurl: https://d111111abcdef8.cloudfront.net\n"
            "        privatekey: %s\n        keypairid: K2JCJMDEHXQW5F\n" % keyfile))
        self.assertEqual(rc, 1, out)
        self.assertIn("configuration error: middleware.storage[0].options.privatekey: ", out)
        self.assertIn(want, out)
        self.assertEqual(len(out.strip().splitlines()), 1, out)

    def test_unreadable_not_rsa_encrypted(self):
        tmp = state["tmp"]
        self.refused(os.path.join(tmp, "missing.pem"), "cannot read")
        ec = os.path.join(tmp, "ec.pem")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ec)
        self.refused(ec, "is not an RSA key")
        enc = os.path.join(tmp, "enc.pem")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-aes128",
                "-pass", "pass:secret", "-out", enc)
        self.refused(enc, "is encrypted")
        junk = os.path.join(tmp, "junk.pem")
        with open(junk, "w") as f:
            f.write("not a key\n")
        self.refused(junk, "holds no PEM private key")


def _have_rgw():
    return shutil.which("radosgw") and shutil.which("ceph-mon")


def cloudfront_parts(location):
    """(resource, expires, signature bytes, key pair id) of a CloudFront signed URL."""
    resource, _, query = location.partition("?")
    q = urllib.parse.parse_qs(query, keep_blank_values=True, strict_parsing=True)
    self_keys = sorted(q)
    assert self_keys == ["Expires", "Key-Pair-Id", "Signature"], self_keys
    assert re.fullmatch(r"Expires=\d+&Signature=[A-Za-z0-9~_-]+&Key-Pair-Id=[A-Za-z0-9]+", query), query
    sig = q["Signature"][0].replace("-", "+").replace("_", "=").replace("~", "/")
    return resource, int(q["Expires"][0]), base64.b64decode(sig), q["Key-Pair-Id"][0]


@unittest.skipUnless(_have_rgw(), "radosgw and ceph-mon are not installed")
class CloudFront(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        tmp = state["tmp"]
        cls.env = berthtest.start_rgw(tmp)
        state["rgw"] = True
        cls.key = os.path.join(tmp, "cf.pem")
        cls.pub = os.path.join(tmp, "cf.pub")
        # CloudFront key pairs come as PKCS#1 ("RSA PRIVATE KEY"): Distribution reads only that
        openssl("genrsa", "-traditional", "-out", cls.key, "2048")
        openssl("rsa", "-in", cls.key, "-pubout", "-out", cls.pub)

    def config(self, rootdirectory, duration="3000s"):
        return (berthtest.s3_storage_yaml(rootdirectory, self.env, chunksize=None)
                + "middleware:\n  storage:\n    - name: cloudfront\n      options:\n"
                "        baseurl: d111111abcdef8.cloudfront.net/cdn\n"
                "        privatekey: %s\n        keypairid: K2JCJMDEHXQW5F\n"
                "        duration: %s\n        ipfilteredby: none\n" % (self.key, duration))

    def verify(self, resource, expires, sig):
        """The canned policy CloudFront rebuilds from the URL, checked with the public key."""
        policy = ('{"Statement":[{"Resource":"%s","Condition":{"DateLessThan":'
                  '{"AWS:EpochTime":%d}}}]}' % (resource, expires))
        tmp = state["tmp"]
        with open(os.path.join(tmp, "policy"), "w") as f:
            f.write(policy)
        with open(os.path.join(tmp, "sig"), "wb") as f:
            f.write(sig)
        p = subprocess.run(["openssl", "dgst", "-sha1", "-verify", self.pub, "-signature",
                            os.path.join(tmp, "sig"), os.path.join(tmp, "policy")],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("Verified OK", p.stdout)

    def test_signed_url(self):
        s = Running("cloudfront", self.config("/cf/root"))
        try:
            c = s.client
            digest = c.push_blob("mw/cf", b"a layer behind a CDN")
            t0 = int(time.time())
            r = c.get("/v2/mw/cf/blobs/" + digest)
            t1 = int(time.time()) + 1
            self.assertEqual(r.status, 307, r.describe())
            resource, expires, sig, kpid = cloudfront_parts(r.header("Location"))
            # "https://" added, the baseurl's path kept, then the key: rootdirectory + path
            self.assertEqual(resource, "https://d111111abcdef8.cloudfront.net/cdn/cf/root" + blob_path(digest))
            self.assertEqual(kpid, "K2JCJMDEHXQW5F")
            self.assertTrue(t0 + 3000 <= expires <= t1 + 3000, (t0, expires, t1))
            self.verify(resource, expires, sig)
            # a tampered expiry does not verify
            with self.assertRaises(AssertionError):
                self.verify(resource, expires + 1, sig)
            h = c.head("/v2/mw/cf/blobs/" + digest)
            self.assertEqual(h.status, 200, h.describe())
        finally:
            self.assertEqual(s.stop(), 0, s.log())

    def test_ipfilteredby_sends_aws_clients_to_s3(self):
        """ipfilteredby: clients inside the AWS ranges (of the regions listed) get S3's presigned
        URL, the others CloudFront's; the ranges come from iprangesurl (here a local server)."""
        ranges = json.dumps({"prefixes": [
            {"ip_prefix": "127.0.0.0/8", "region": "local-1", "service": "AMAZON"},
            {"ip_prefix": "198.51.100.0/24", "region": "other-1", "service": "AMAZON"}],
            "ipv6_prefixes": [{"ipv6_prefix": "2001:db8::/32", "region": "local-1", "service": "AMAZON"}]}).encode()
        fetched = []

        class Ranges(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                fetched.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", str(len(ranges)))
                self.end_headers()
                self.wfile.write(ranges)

            def log_message(self, *args):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ranges)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        url = "http://127.0.0.1:%d/ip-ranges.json" % srv.server_address[1]
        try:
            for by, regions, s3_for in (
                    ("awsregion", "Local-1, nowhere-2", ("127.0.0.1", "2001:db8::7")),
                    ("aws", None, ("127.0.0.1", "198.51.100.7", "::ffff:198.51.100.9", "2001:db8::7"))):
                body = self.config("/cf/filter-" + by) + "        ipfilteredby: %s\n" % by
                body = body.replace("        ipfilteredby: none\n", "", 1)
                body += "        iprangesurl: %s\n        updatefrequency: 1h\n" % url
                if regions:
                    body += "        awsregion: %s\n" % regions
                s = Running("cf-filter-" + by, body)
                try:
                    self.assertEqual(fetched[-1:], ["/ip-ranges.json"], s.log())
                    digest = s.client.push_blob("mw/filter", b"near or far " + by.encode())
                    for ip in ("127.0.0.1", "203.0.113.5", "198.51.100.7", "2001:db8::7",
                               "::ffff:198.51.100.9"):
                        headers = {} if ip == "127.0.0.1" else {"X-Forwarded-For": ip + ", 10.0.0.1"}
                        r = s.client.get("/v2/mw/filter/blobs/" + digest, headers=headers)
                        self.assertEqual(r.status, 307, r.describe())
                        loc = r.header("Location")
                        if ip in s3_for:
                            self.assertTrue(loc.startswith(self.env["S3_ENDPOINT"] + "/"), (by, ip, loc))
                            self.assertIn("X-Amz-Signature=", loc)
                        else:
                            self.assertTrue(loc.startswith("https://d111111abcdef8.cloudfront.net/cdn/"),
                                            (by, ip, loc))
                            self.verify(*cloudfront_parts(loc)[:3])
                finally:
                    self.assertEqual(s.stop(), 0, s.log())
        finally:
            srv.shutdown()
            srv.server_close()

    def test_ipfilteredby_without_ranges(self):
        """Ranges that cannot be fetched are logged, and berth starts (as Distribution does):
        until a fetch works, every client gets CloudFront's URL."""
        body = self.config("/cf/noranges").replace("ipfilteredby: none", "ipfilteredby: aws")
        body += "        iprangesurl: http://127.0.0.1:1/ip-ranges.json\n"
        s = Running("cf-noranges", body)
        try:
            digest = s.client.push_blob("mw/noranges", b"nothing fetched")
            r = s.client.get("/v2/mw/noranges/blobs/" + digest)
            self.assertEqual(r.status, 307, r.describe())
            self.assertTrue(r.header("Location").startswith("https://d111111abcdef8.cloudfront.net/cdn/"))
            self.assertIn("cloudfront: ipfilteredby: cannot fetch http://127.0.0.1:1/ip-ranges.json", s.log())
        finally:
            self.assertEqual(s.stop(), 0, s.log())

    @unittest.skipUnless(os.path.exists(REGISTRY), "docker-registry is not installed")
    def test_same_structure_as_distribution(self):
        body = self.config("/cf/interop", duration="20m")
        b = Running("cf-berth", body)
        try:
            digest = b.client.push_blob("mw/interop", b"signed by both")
            ours = b.client.get("/v2/mw/interop/blobs/" + digest)
        finally:
            self.assertEqual(b.stop(), 0, b.log())
        d = Running("cf-distribution", body, reference=True)
        try:
            t0 = int(time.time())
            theirs = d.client.get("/v2/mw/interop/blobs/" + digest)
            t1 = int(time.time()) + 1
        finally:
            d.stop()
        self.assertEqual(theirs.status, 307, theirs.describe() + d.log())
        o_res, o_exp, o_sig, o_kp = cloudfront_parts(ours.header("Location"))
        t_res, t_exp, t_sig, t_kp = cloudfront_parts(theirs.header("Location"))
        self.assertEqual(o_res, t_res)
        self.assertEqual(o_kp, t_kp)
        self.assertTrue(t0 + 1200 <= t_exp <= t1 + 1200)
        self.assertLessEqual(abs(o_exp - t_exp), 60)
        self.assertEqual(len(o_sig), len(t_sig))
        self.verify(t_res, t_exp, t_sig)  # the policy rebuilt here is the one Distribution signed
        self.verify(o_res, o_exp, o_sig)


if __name__ == "__main__":
    unittest.main()
