"""Answers matched to Distribution's (issue 15), each checked against docker-registry 2.8 (run
with --reference) and Distribution 3's source:

  - a manifest GET or HEAD whose Accept names manifest types, none of them the stored OCI
    manifest's (or index's) own, answers 404 MANIFEST_UNKNOWN "... accept header does not
    support ..." (an old Docker client would choke on the OCI body); Docker manifests are served
    to any Accept. (berth still serves a client that names no manifest type at all, or sends no
    Accept, where Distribution answers 404 too.)
  - a manifest PUT with no Content-Type, or a generic one (text/plain, application/json), is
    refused with 400 MANIFEST_INVALID: Distribution has no parser to pick for it;
  - _catalog?n= above the most a page holds (1000) answers 400 PAGINATION_NUMBER_INVALID with
    the number in the detail, instead of a shorter page;
  - a malformed Range on a blob GET (bytes=--1, bytes=1-2-3, a start past 2^64, bytes=5-2,
    another unit) answers 416, as Go's http.ServeContent does; several well-formed ranges get
    the whole body (200), which RFC 9110 allows (Go would answer a multipart 206).
"""

import json

import berthtest as bt
from berthtest import setUpModule, tearDownModule  # noqa: F401


class AcceptTest(bt.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.repo = "answers/accept"
        config = b'{"architecture":"amd64","os":"linux"}'
        layer = b"answers accept layer"
        cls.c.push_blob(cls.repo, config)
        cls.c.push_blob(cls.repo, layer)
        cls.oci = json.dumps({"schemaVersion": 2, "mediaType": bt.OCI_MANIFEST,
                              "config": bt.descriptor(config, bt.OCI_CONFIG),
                              "layers": [bt.descriptor(layer, bt.OCI_LAYER)]}).encode()
        cls.docker = json.dumps({"schemaVersion": 2, "mediaType": bt.DOCKER_MANIFEST,
                                 "config": bt.descriptor(config, bt.DOCKER_CONFIG),
                                 "layers": [bt.descriptor(layer, bt.DOCKER_LAYER)]}).encode()
        cls.index = json.dumps({"schemaVersion": 2, "mediaType": bt.OCI_INDEX, "manifests": [
            bt.descriptor(cls.oci, bt.OCI_MANIFEST,
                          platform={"architecture": "amd64", "os": "linux"})]}).encode()
        for ref, body, mt in (("oci", cls.oci, bt.OCI_MANIFEST), ("docker", cls.docker, bt.DOCKER_MANIFEST),
                              ("index", cls.index, bt.OCI_INDEX)):
            r = cls.c.put("/v2/%s/manifests/%s" % (cls.repo, ref), body,
                          headers={"Content-Type": mt})
            assert r.status == 201, r.describe()

    def get(self, ref, accept, method="GET"):
        headers = {"Accept": accept} if isinstance(accept, str) else {}
        if isinstance(accept, list):  # several Accept headers: raw request
            st, resp = self.c.raw(("%s /v2/%s/manifests/%s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n"
                                   % (method, self.repo, ref, "".join("Accept: %s\r\n" % a for a in accept))).encode())
            return st
        return self.c.request(method, "/v2/%s/manifests/%s" % (self.repo, ref), headers=headers)

    def test_docker_only_accept_gets_404_for_oci(self):
        docker_only = ", ".join([bt.DOCKER_MANIFEST, bt.DOCKER_LIST])
        for ref, what in (("oci", "OCI manifest"), ("index", "OCI index")):
            r = self.get(ref, docker_only)
            self.assertError(r, 404, "MANIFEST_UNKNOWN", ref)
            self.assertIn("accept header does not support", r.json()["errors"][0]["message"])
            self.assertIn(what, r.json()["errors"][0]["message"])
            self.assertStatus(self.get(ref, docker_only, "HEAD"), 404)
        # the other OCI type does not cover it either
        self.assertStatus(self.get("oci", bt.OCI_INDEX), 404)
        self.assertStatus(self.get("index", bt.OCI_MANIFEST + "," + bt.DOCKER_MANIFEST), 404)

    def test_accept_naming_the_type_is_served(self):
        for ref, accept in (("oci", bt.OCI_MANIFEST), ("oci", bt.DOCKER_MANIFEST + " , " + bt.OCI_MANIFEST + ";q=0.5"),
                            ("index", bt.OCI_INDEX), ("docker", bt.DOCKER_MANIFEST), ("docker", bt.ACCEPT_ALL["Accept"])):
            r = self.get(ref, accept)
            self.assertStatus(r, 200, accept)
        # Accept given twice: the types of both count
        self.assertEqual(self.get("oci", [bt.DOCKER_MANIFEST, bt.OCI_MANIFEST]), 200)
        self.assertEqual(self.get("oci", [bt.DOCKER_MANIFEST, bt.DOCKER_LIST]), 404)

    @bt.berth_only("Distribution 404s an OCI manifest to a client naming no manifest type")
    def test_accept_naming_no_manifest_type_is_served(self):
        for accept in (None, "*/*", "application/json"):
            self.assertStatus(self.get("oci", accept), 200, accept)


class ContentTypeTest(bt.TestCase):
    def test_put_without_a_manifest_content_type(self):
        repo = self.repo()
        config = b'{"architecture":"amd64","os":"linux"}'
        self.c.push_blob(repo, config)
        body = json.dumps({"schemaVersion": 2, "mediaType": bt.OCI_MANIFEST,
                           "config": bt.descriptor(config, bt.OCI_CONFIG), "layers": []}).encode()
        for ct in (None, "", "text/plain", "text/plain; charset=utf-8", "application/json"):
            headers = {"Content-Type": ct} if ct is not None else {}
            r = self.c.put("/v2/%s/manifests/t" % repo, body, headers=headers)
            self.assertError(r, 400, "MANIFEST_INVALID", "Content-Type %r" % ct)
        self.assertStatus(self.c.get("/v2/%s/manifests/t" % repo, headers=bt.ACCEPT_ALL), 404)
        r = self.c.put("/v2/%s/manifests/t" % repo, body, headers={"Content-Type": bt.OCI_MANIFEST})
        self.assertStatus(r, 201)


class CatalogTest(bt.TestCase):
    def test_n_above_the_maximum(self):
        for n in (1001, 100000):
            r = self.c.get("/v2/_catalog?n=%d" % n)
            self.assertError(r, 400, "PAGINATION_NUMBER_INVALID", "n=%d" % n)
            self.assertEqual(r.json()["errors"][0].get("detail"), {"n": n})
        self.assertStatus(self.c.get("/v2/_catalog?n=1000"), 200)


class RangeTest(bt.TestCase):
    def test_malformed_range_is_416(self):
        repo = self.repo()
        data = bytes(range(256)) * 4
        d = self.c.push_blob(repo, data)
        url = "/v2/%s/blobs/%s" % (repo, d)
        for rng in ("bytes=--1", "bytes=1-2-3", "bytes=18446744073709551616-", "bytes=5-2",
                    "items=0-1", "bytes=a-b", "bytes=0-1,--1"):
            r = self.c.get(url, headers={"Range": rng})
            self.assertStatus(r, 416, rng)
            self.assertNotEqual(r.body, data, rng)
        # still a well-formed single range: 206
        r = self.c.get(url, headers={"Range": "bytes=1-2"})
        self.assertStatus(r, 206)
        self.assertEqual(r.body, data[1:3])

    @bt.berth_only("Go answers several ranges with a multipart 206")
    def test_several_ranges_get_the_whole_body(self):
        repo = self.repo()
        data = b"several ranges" * 10
        d = self.c.push_blob(repo, data)
        for rng in ("bytes=0-1,3-4", "bytes=0-1, 5-"):
            r = self.c.get("/v2/%s/blobs/%s" % (repo, d), headers={"Range": rng})
            self.assertStatus(r, 200, rng)
            self.assertEqual(r.body, data)


if __name__ == "__main__":
    bt.main()
