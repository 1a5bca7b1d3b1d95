"""Error bodies, invalid names and tags, and path traversal attempts in every part of the URL
that names something on disk (repository names, references, upload ids, mount sources)."""

import os
import uuid

import berthtest
from berthtest import (ACCEPT_ALL, OCI_MANIFEST, canonical, digest, reference_mode,  # noqa: F401
                       setUpModule, tearDownModule)

SPEC_CODES = {"BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
              "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID",
              "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED",
              "TOOMANYREQUESTS",
              # Distribution's own codes that the spec's clients treat as UNKNOWN
              "RANGE_INVALID", "TAG_INVALID", "MANIFEST_UNVERIFIED", "UNKNOWN",
              "PAGINATION_NUMBER_INVALID"}

# Distribution's router redirects ("301 Location: cleaned path") instead of refusing dot segments;
# the brief asks berth for a 4xx.
TRAVERSAL_OK = tuple(range(400, 500)) + ((301, 308) if reference_mode() else ())


class ErrorFormatTest(berthtest.TestCase):
    def test_error_bodies(self):
        repo = self.repo()
        self.c.push_image(repo, "v1")
        cases = [
            (self.c.get("/v2/%s/blobs/%s" % (repo, digest(b"x"))), 404, "BLOB_UNKNOWN"),
            (self.c.get("/v2/%s/manifests/nope" % repo, headers=ACCEPT_ALL), 404, "MANIFEST_UNKNOWN"),
            (self.c.get("/v2/%s/tags/list" % self.repo("nosuch")), 404, "NAME_UNKNOWN"),
            (self.c.put("/v2/%s/manifests/bad" % repo, b"{", headers={"Content-Type": OCI_MANIFEST}),
             400, "MANIFEST_INVALID"),
            (self.c.get("/v2/%s/blobs/sha256:1" % repo), 400, "DIGEST_INVALID"),
        ]
        for r, status, code in cases:
            self.assertError(r, status, code)
            # spec: a JSON body MUST have this shape; code MUST be uppercase letters/underscores
            ct = (r.header("Content-Type") or "").split(";")[0].strip()
            self.assertEqual(ct, "application/json", "error Content-Type" + r.describe())
            doc = r.json()
            self.assertEqual(set(doc), {"errors"}, r.describe())
            for e in doc["errors"]:
                self.assertIn(e["code"], SPEC_CODES, r.describe())
                self.assertIsInstance(e.get("message"), str, r.describe())
                self.assertLessEqual(set(e), {"code", "message", "detail"}, r.describe())

    def test_head_errors_have_no_body(self):
        repo = self.repo()
        for path in ("/v2/%s/blobs/%s" % (repo, digest(b"x")), "/v2/%s/manifests/nope" % repo):
            r = self.c.head(path, headers=ACCEPT_ALL)
            self.assertStatus(r, 404)
            self.assertNoBody(r)


class MalformedRequestTest(berthtest.TestCase):
    def test_bad_percent_encoding(self):
        for path in ("/v2/%zz/tags/list", "/v2/a%/tags/list", "/v2/r/manifests/%zz",
                     "/v2/r/blobs/uploads/%g0"):
            r = self.c.get(path)
            self.assertStatus(r, tuple(range(400, 500)), path)

    @berthtest.reference_deviation("2.8 answers 500 UNKNOWN for names over 255 characters")
    def test_very_long_url(self):
        for path in ("/v2/" + "a/" * 5000 + "tags/list",
                     "/v2/r/manifests/" + "t" * 20000,
                     "/v2/r/tags/list?n=1&last=" + "x" * 20000):
            try:
                r = self.c.get(path)
            except ConnectionError:
                continue  # dropping such a request is fine
            self.assertStatus(r, tuple(range(400, 500)) + (200,), path[:60])
        self.assertStatus(self.c.get("/v2/"), 200, "server still answers")

    def test_many_headers(self):
        h = {"X-Filler-%d" % i: "v" * 100 for i in range(50)}
        r = self.c.get("/v2/", headers=h)
        self.assertStatus(r, 200)


class NameTest(berthtest.TestCase):
    BAD_NAMES = ["upper/Case", "UPPER", "a..b", "-lead", "trail-", "a/-b", "a/b-",
                 "a/.b", "a_-b", "a..", ".a", "x/a..b/c"]

    def check_bad_name(self, name, allowed_codes=("NAME_INVALID", "NAME_UNKNOWN")):
        """Every endpoint refuses the name: 400 NAME_INVALID or 404 (spec: names MUST match)."""
        d = digest(b"x")
        reqs = [("GET", "/v2/%s/tags/list" % name, None),
                ("GET", "/v2/%s/manifests/latest" % name, None),
                ("PUT", "/v2/%s/manifests/latest" % name, b"{}"),
                ("GET", "/v2/%s/blobs/%s" % (name, d), None),
                ("POST", "/v2/%s/blobs/uploads/" % name, b""),
                ("GET", "/v2/%s/referrers/%s" % (name, d), None)]
        for method, path, body in reqs:
            r = self.c.request(method, path, body=body,
                               headers=dict(ACCEPT_ALL, **({"Content-Type": OCI_MANIFEST} if body else {})))
            # Distribution: NAME_INVALID (400) or no route (404); never a success
            self.assertStatus(r, (400, 404), "name %r" % name)
            if r.status == 400:
                self.assertError(r, 400, "NAME_INVALID", "name %r" % name)

    def test_invalid_names(self):
        for name in self.BAD_NAMES:
            self.check_bad_name(name)

    @berthtest.reference_deviation("2.8 reads an uppercase first component as a registry host "
                                   "and answers 500 to PUT")
    def test_uppercase_first_component(self):
        self.check_bad_name("Upper/case")

    def test_trailing_slash(self):
        r = self.c.post("/v2/trailing//blobs/uploads/")
        # Distribution redirects (301) the double slash away; the brief: 400 NAME_INVALID or 404
        self.assertStatus(r, (400, 404) + ((301,) if reference_mode() else ()))
        for path in ("/v2/trailing/slash//tags/list", "/v2/empty//component/tags/list",
                     "/v2//leading/tags/list"):
            r = self.c.get(path)
            self.assertStatus(r, (400, 404) + ((301,) if reference_mode() else ()), path)

    @berthtest.reference_deviation("2.8 answers 500 UNKNOWN for names over 255 characters")
    def test_name_too_long(self):
        # spec: total length MUST be less than 256 characters
        for name in ("a" * 256, "/".join(["abcdefg"] * 40)[:300].rstrip("/")):
            self.assertGreater(len(name), 255)
            self.check_bad_name(name)

    def test_name_of_255_chars_is_fine(self):
        name = "a" * 100 + "/" + "b" * 100 + "/" + "c" * 53
        self.assertEqual(len(name), 255)
        d = self.c.push_blob(name, b"long name")
        self.assertStatus(self.c.get("/v2/%s/blobs/%s" % (name, d)), 200)

    def test_separators_allowed(self):
        # spec regex [a-z0-9]+([._-][a-z0-9]+)*(/...)*; Distribution also allows __ and repeated -
        for name in ("a.b/c_d/e-f", "a0/1b/2", "x__y/z---w"):
            d = self.c.push_blob(name, b"separators")
            self.assertStatus(self.c.get("/v2/%s/blobs/%s" % (name, d)), 200, name)


class TagTest(berthtest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.r = "errors/tags"
        cls.img = cls.c.push_image(cls.r, "base")

    def test_invalid_tags(self):
        repo = self.repo()
        img = self.c.push_image(repo, "base")
        for tag in ("bad!tag", "-lead", ".lead", "a" * 129, "sp%20ace", "t%2fslash"):
            r = self.c.put_manifest(repo, tag, img["manifest"])
            # spec: reference MUST be a digest or match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
            # Distribution has no route for such a tag (404); berth may say 400 TAG_INVALID /
            # MANIFEST_INVALID
            self.assertStatus(r, (400, 404), "tag %r" % tag)
            if r.status == 400:
                self.assertError(r, 400, ("TAG_INVALID", "MANIFEST_INVALID", "DIGEST_INVALID"),
                                 "tag %r" % tag)
            self.assertStatus(self.c.get("/v2/%s/manifests/%s" % (repo, tag), headers=ACCEPT_ALL),
                              (400, 404), "tag %r" % tag)
        tags = self.c.get("/v2/%s/tags/list" % repo).json()["tags"]
        self.assertEqual(tags, ["base"])

    @berthtest.reference_deviation("2.8 answers 500 to PUT with a reference like colon:tag")
    def test_reference_with_colon(self):
        for ref in ("colon:tag", "sha256:short", "md5:" + "0" * 32):
            r = self.c.put_manifest(self.r, ref, self.img["manifest"])
            self.assertStatus(r, (400, 404), ref)  # neither a tag nor a valid digest

    def test_longest_tag(self):
        for tag in ("A" * 128, "_" + "x" * 127, "a.b-c_D.9"):
            r = self.c.put_manifest(self.r, tag, self.img["manifest"])
            self.assertStatus(r, 201, tag)
            self.assertStatus(self.c.get("/v2/%s/manifests/%s" % (self.r, tag), headers=ACCEPT_ALL), 200)


class TraversalTest(berthtest.TestCase):
    """None of these may create, read or delete anything outside the storage root."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.mark = "berth-escape-" + uuid.uuid4().hex[:10]
        cls.r = "trav/repo"
        cls.img = cls.c.push_image(cls.r, "v1")
        cls.blob = digest(cls.img["config"])
        # a file next to the root that attacks try to reach
        # only a temporary directory the harness made is ours to inspect and write into
        cls.parent = cls.srv.tmp
        if cls.parent:
            with open(os.path.join(cls.parent, "sentinel"), "w") as f:
                f.write("keep me")

    def up(self, n=12):
        return "..%2f" * n

    def payloads(self):
        m = self.mark
        ups = self.up()
        absdir = "%2ftmp%2f" + m
        return [ups + "tmp%2f" + m, "..%2f..%2f" + m, "%2e%2e%2f%2e%2e%2f" + m, "%2e%2e", "..",
                absdir, "%2e%2e%2f" * 12 + "tmp%2f" + m, m + "%00", "%00" + m, m + "%2f..%2f..",
                "....%2f%2f" + m, "..%5c..%5c" + m, ups + "sentinel"]

    def check(self, r, what):
        self.assertStatus(r, TRAVERSAL_OK, what)

    def test_names(self):
        for p in self.payloads() + ["../../" + self.mark, "a/../../" + self.mark,
                                    "%2e%2e/%2e%2e/" + self.mark, "a/%2e%2e/%2e%2e/" + self.mark]:
            for method, path, body in (
                    ("POST", "/v2/%s/blobs/uploads/" % p, b""),
                    ("POST", "/v2/%s/blobs/uploads/?digest=%s" % (p, digest(b"evil")), b"evil"),
                    ("PUT", "/v2/%s/manifests/v1" % p, self.img["manifest"]),
                    ("GET", "/v2/%s/tags/list" % p, None),
                    ("GET", "/v2/%s/blobs/%s" % (p, self.blob), None),
                    ("DELETE", "/v2/%s/blobs/%s" % (p, self.blob), None),
                    ("DELETE", "/v2/%s/manifests/%s" % (p, self.img["digest"]), None),
                    ("GET", "/v2/%s/referrers/%s" % (p, self.img["digest"]), None)):
                r = self.c.request(method, path, body=body,
                                   headers={"Content-Type": OCI_MANIFEST} if method == "PUT" else {})
                self.check(r, "%s %s" % (method, path))
        self.assertOutsideUntouched()

    def test_references(self):
        p_list = self.payloads() + ["..%2f" * k + "sentinel" for k in range(1, 10)] + ["sha256:" + self.up(3) + self.mark, "sha256%3a..%2f..%2f" + self.mark]
        for p in p_list:
            for method, path, body in (
                    ("PUT", "/v2/%s/manifests/%s" % (self.r, p), self.img["manifest"]),
                    ("GET", "/v2/%s/manifests/%s" % (self.r, p), None),
                    ("HEAD", "/v2/%s/manifests/%s" % (self.r, p), None),
                    ("DELETE", "/v2/%s/manifests/%s" % (self.r, p), None),
                    ("GET", "/v2/%s/blobs/%s" % (self.r, p), None),
                    ("DELETE", "/v2/%s/blobs/%s" % (self.r, p), None),
                    ("GET", "/v2/%s/blobs/sha256:%s" % (self.r, p), None),
                    ("GET", "/v2/%s/referrers/%s" % (self.r, p), None)):
                h = dict(ACCEPT_ALL)
                if method == "PUT":
                    h["Content-Type"] = OCI_MANIFEST
                r = self.c.request(method, path, body=body, headers=h)
                self.check(r, "%s %s" % (method, path))
        # the repository is intact
        self.assertStatus(self.c.get("/v2/%s/manifests/v1" % self.r, headers=ACCEPT_ALL), 200)
        self.assertStatus(self.c.get("/v2/%s/blobs/%s" % (self.r, self.blob)), 200)
        self.assertOutsideUntouched()

    def test_upload_ids(self):
        # the sentinel beside the root at every depth the layout could put it
        depths = ["..%2f" * k + "sentinel" for k in range(1, 10)] + \
                 ["..%2f" * k + "root" for k in range(1, 10)]
        for p in self.payloads() + depths:
            base = "/v2/%s/blobs/uploads/%s" % (self.r, p)
            for method, path, body in (
                    ("GET", base, None),
                    ("PATCH", base, b"evil data"),
                    ("PUT", base + "?digest=" + digest(b"evil data"), b"evil data"),
                    ("DELETE", base, None)):
                r = self.c.request(method, path, body=body)
                self.check(r, "%s %s" % (method, path))
        self.assertOutsideUntouched()

    def test_query_parameters(self):
        m = self.mark
        for q in ("mount=%s&from=%s" % (self.blob, self.up() + "tmp%2f" + m),
                  "mount=%s&from=%s" % (self.blob, "%2ftmp%2f" + m),
                  "mount=%s&from=%s" % (self.blob, "..%2f" + self.r.split("/")[0]),
                  "mount=%s&from=%s" % ("sha256:" + self.up(3) + m, self.r),
                  "digest=%s" % ("sha256:" + self.up(3) + m)):
            r = self.c.post("/v2/%s/blobs/uploads/?%s" % (self.repo(), q), b"evil")
            # a bad mount source is "unable to mount": 202 (a normal upload) or a 4xx
            self.assertStatus(r, TRAVERSAL_OK + (202,), q)
            if r.status == 202:
                self.c.delete(self.c.resolve(r.header("Location")))
        for q in ("last=" + self.up(6) + m, "n=2&last=%2f" + m):
            self.assertStatus(self.c.get("/v2/%s/tags/list?%s" % (self.r, q)), (200, 400), q)
            self.assertStatus(self.c.get("/v2/_catalog?" + q), (200, 400), q)
        self.assertOutsideUntouched()

    def test_raw_dot_segments(self):
        # http.client sends the path verbatim: unnormalised dot segments reach the server
        for path in ("/v2/../../../../tmp/%s/tags/list" % self.mark,
                     "/v2/%s/../../../../../../tmp/%s/blobs/uploads/" % (self.r, self.mark),
                     "/v2/%s/blobs/uploads/../../../../../../../tmp/%s" % (self.r, self.mark),
                     "/v2/%s/manifests/../../../../../tmp/%s" % (self.r, self.mark)):
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                body = b"x" if method in ("POST", "PUT", "PATCH") else None
                r = self.c.request(method, path, body=body)
                self.check(r, "%s %s" % (method, path))
        self.assertOutsideUntouched()

    def assertOutsideUntouched(self):
        hits = [p for p in ("/tmp/" + self.mark, "/" + self.mark, "/tmp/" + self.mark + "\x00")
                if os.path.lexists(p.split("\x00")[0])]
        if self.parent:
            for dirpath, dirnames, filenames in os.walk(self.parent):
                for n in dirnames + filenames:
                    if self.mark in n:
                        hits.append(os.path.join(dirpath, n))
            # nothing but root/, the log (and the reference's config) beside the root
            extra = set(os.listdir(self.parent)) - {"root", "server.log", "config.yml", "sentinel"}
            self.assertFalse(extra, "files created beside the storage root: %s" % extra)
            with open(os.path.join(self.parent, "sentinel")) as f:
                self.assertEqual(f.read(), "keep me")
        root = self.srv.root
        if root:
            # inside the root everything lives under docker/registry/v2 (Distribution's layout)
            for top, allowed in ((root, {"docker"}), (os.path.join(root, "docker"), {"registry"}),
                                 (os.path.join(root, "docker", "registry"), {"v2"})):
                if os.path.isdir(top):
                    extra = set(os.listdir(top)) - allowed
                    self.assertFalse(extra, "unexpected entries in %s: %s" % (top, extra))
            v2 = os.path.join(root, "docker", "registry", "v2")
            if os.path.isdir(v2):
                extra = set(os.listdir(v2)) - {"repositories", "blobs", "uploads", "_uploads", "_berth"}
                self.assertFalse(extra, "unexpected entries in %s: %s" % (v2, extra))
                # berth's own state (the catalog's generations) and nothing else
                state = os.path.join(v2, "_berth")
                for dirpath, dirnames, filenames in os.walk(state):
                    rel = os.path.relpath(dirpath, state)
                    allowed = {".": {"catalog"}, "catalog": {"generation", "deletions"}}.get(rel, set())
                    extra = set(dirnames + filenames) - allowed
                    self.assertFalse(extra, "unexpected entries in %s: %s" % (dirpath, extra))
                repos = os.path.join(v2, "repositories")
                for dirpath, dirnames, filenames in os.walk(repos):
                    for n in dirnames + filenames:
                        self.assertNotIn("..", n.split("/"), os.path.join(dirpath, n))
                        self.assertNotIn("\x00", n)
        self.assertFalse(hits, "traversal reached outside the root: %s" % hits)


if __name__ == "__main__":
    berthtest.main()
