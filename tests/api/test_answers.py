"""Answers as Distribution gives them (issue 14): GET / for load balancers, a manifest reference
that is neither a tag nor a digest, NAME_UNKNOWN's detail, and a schema1 manifest that an older
Distribution left in the store. Runs against docker-registry too (--reference)."""

import base64
import json
import os

import berthtest
from berthtest import ACCEPT_ALL, DOCKER_SCHEMA1_SIGNED, digest, setUpModule, tearDownModule  # noqa: F401

INVALID_REFERENCES = (".INVALID_MANIFEST_NAME", "-lead", "bad!tag", "a" * 129, "sha256:abc",
                      "colon:tag", "md5:" + "0" * 32)


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_schema1(name, tag, layer_digest):
    """A schema1 manifest in libtrust's "pretty signature" form, as Docker 1.x pushed it and
    Distribution 2.x stored it byte for byte. Its signature is not checked on GET."""
    payload = json.dumps({
        "schemaVersion": 1, "name": name, "tag": tag, "architecture": "amd64",
        "fsLayers": [{"blobSum": layer_digest}],
        "history": [{"v1Compatibility": json.dumps({"id": "a" * 64, "os": "linux"})}],
    }, indent=3).encode()
    format_length = len(payload) - 2  # everything before the final "\n}"
    protected = {"formatLength": format_length, "formatTail": _b64url(payload[format_length:]),
                 "time": "2016-01-01T00:00:00Z"}
    sig = {"header": {"jwk": {"crv": "P-256", "kid": "ABCD:EFGH", "kty": "EC",
                              "x": _b64url(b"x" * 32), "y": _b64url(b"y" * 32)},
                      "alg": "ES256"},
           "signature": _b64url(b"s" * 64),
           "protected": _b64url(json.dumps(protected).encode())}
    sigs = json.dumps([sig], indent=3).replace("\n", "\n   ").encode()
    return payload[:format_length] + b",\n   \"signatures\": " + sigs + b"\n}"


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


class RootTest(berthtest.TestCase):
    def test_root_answers_200_empty(self):
        # Distribution answers "/" itself (load balancers probe it): 200, no body, no-cache
        for method in ("GET", "HEAD", "POST", "DELETE"):
            r = self.c.request(method, "/")
            self.assertStatus(r, 200, method)
            self.assertEqual(r.body, b"", method + r.describe())
            self.assertEqual(r.header("Content-Length", "0"), "0", r.describe())
            self.assertHeader(r, "Cache-Control", "no-cache")

    def test_only_the_root(self):
        self.assertStatus(self.c.get("/other"), 404)
        self.assertStatus(self.c.get("/?probe=1"), 200)


class InvalidReferenceTest(berthtest.TestCase):
    def test_read_of_an_invalid_reference_is_404(self):
        repo = self.repo()
        self.c.push_image(repo, "v1")
        for ref in INVALID_REFERENCES:
            path = "/v2/%s/manifests/%s" % (repo, ref)
            for method in ("GET", "HEAD"):
                r = self.c.request(method, path, headers=ACCEPT_ALL)
                # OCI conformance v1.1.1 and Distribution 3: 404 MANIFEST_UNKNOWN. Distribution 2.8
                # has no route for it: 404 with a text body, or 500 past its route's grammar.
                if berthtest.reference_mode():
                    self.assertStatus(r, (404, 500), ref)
                else:
                    self.assertError(r, 404, "MANIFEST_UNKNOWN", "%s %s" % (method, ref))

    def test_delete_of_an_invalid_reference_is_404(self):
        repo = self.repo()
        self.c.push_image(repo, "v1")
        r = self.c.delete("/v2/%s/manifests/.INVALID_MANIFEST_NAME" % repo)
        self.assertStatus(r, 404)
        if not berthtest.reference_mode():
            self.assertError(r, 404, "MANIFEST_UNKNOWN")
        # and the image is untouched
        self.assertStatus(self.c.get("/v2/%s/manifests/v1" % repo, headers=ACCEPT_ALL), 200)

    def test_push_of_an_invalid_tag_is_refused(self):
        repo = self.repo()
        img = self.c.push_image(repo, "v1")
        r = self.c.put_manifest(repo, ".INVALID_MANIFEST_NAME", img["manifest"])
        self.assertStatus(r, (400, 404))


class NameUnknownTest(berthtest.TestCase):
    def test_name_unknown_detail(self):
        repo = self.repo("nosuch")
        r = self.c.get("/v2/%s/tags/list" % repo)
        self.assertError(r, 404, "NAME_UNKNOWN")
        err = r.json()["errors"][0]
        self.assertEqual(err.get("detail"), {"name": repo}, r.describe())
        self.assertEqual(err.get("message"), "repository name not known to registry")


class Schema1Test(berthtest.TestCase):
    """A store written by Distribution 2.x may hold schema1 manifests pushed by Docker 1.x:
    they are served byte for byte with their own media type, as Distribution 2.8 serves them."""

    def test_stored_schema1_is_served_as_schema1(self):
        if not self.srv.root:
            self.skipTest("needs the server's storage root")
        repo = self.repo()
        layer = b"schema1 layer bytes"
        self.c.push_blob(repo, layer)
        body = signed_schema1(repo, "old", digest(layer))
        d = digest(body)
        hexd = d.split(":", 1)[1]
        v2 = os.path.join(self.srv.root, "docker", "registry", "v2")
        write(os.path.join(v2, "blobs", "sha256", hexd[:2], hexd, "data"), body)
        mdir = os.path.join(v2, "repositories", repo, "_manifests")
        write(os.path.join(mdir, "revisions", "sha256", hexd, "link"), d.encode())
        write(os.path.join(mdir, "tags", "old", "index", "sha256", hexd, "link"), d.encode())
        write(os.path.join(mdir, "tags", "old", "current", "link"), d.encode())

        for ref in ("old", d):
            path = "/v2/%s/manifests/%s" % (repo, ref)
            r = self.c.get(path, headers=ACCEPT_ALL)
            self.assertStatus(r, 200, ref)
            self.assertEqual(r.header("Content-Type"), DOCKER_SCHEMA1_SIGNED, r.describe())
            got = json.loads(r.body)
            for key in ("schemaVersion", "name", "tag", "fsLayers", "history"):
                self.assertEqual(got.get(key), json.loads(body)[key], key + r.describe())
            if not berthtest.reference_mode():
                # Distribution 2.8 adds a signature of its own key on every GET (left from
                # when it kept signatures apart); berth keeps manifests byte for byte
                self.assertEqual(r.body, body, "bytes differ" + r.describe())
            self.assertEqual(r.header("Docker-Content-Digest"), d, r.describe())
            h = self.c.head(path, headers=ACCEPT_ALL)
            self.assertStatus(h, 200, ref)
            self.assertEqual(h.header("Content-Type"), DOCKER_SCHEMA1_SIGNED, h.describe())
            self.assertEqual(h.header("Content-Length"), str(len(r.body)), h.describe())


if __name__ == "__main__":
    berthtest.main()
