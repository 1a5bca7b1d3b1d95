"""Manifests: PUT (end-7), GET/HEAD (end-3), DELETE (end-9) for OCI manifests and indexes and
Docker schema2 manifests and manifest lists; validation errors; the OCI-Subject header."""

import json
import urllib.parse

import berthtest
from berthtest import (ACCEPT_ALL, DOCKER_CONFIG, DOCKER_FOREIGN, DOCKER_LAYER, DOCKER_LIST,
                       DOCKER_MANIFEST, DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, OCI_CONFIG,
                       OCI_EMPTY, OCI_INDEX, OCI_LAYER, OCI_LAYER_NONDIST, OCI_MANIFEST,
                       canonical, descriptor, digest, reference_deviation, setUpModule,  # noqa: F401
                       tearDownModule)


def child(img, **platform):
    d = {"mediaType": img["media_type"], "digest": img["digest"], "size": len(img["manifest"])}
    if platform:
        d["platform"] = platform
    return d


class ManifestTestCase(berthtest.TestCase):
    def mget(self, repo, ref, method="GET", **kw):
        h = dict(ACCEPT_ALL)
        h.update(kw.pop("headers", {}))
        return self.c.request(method, "/v2/%s/manifests/%s" % (repo, ref), headers=h, **kw)

    def assertPushed(self, r, repo, body):
        """201 + Location (spec MUST) + Docker-Content-Digest (spec MUST match the body)."""
        self.assertStatus(r, 201)
        d = digest(body)
        self.assertHeader(r, "Docker-Content-Digest", d)
        loc = self.c.resolve(self.assertHeader(r, "Location"))
        self.assertEqual(urllib.parse.urlsplit(loc).path, "/v2/%s/manifests/%s" % (repo, d),
                         "Location should name the manifest by digest (Distribution)" + r.describe())
        self.assertStatus(self.c.head(loc, headers=ACCEPT_ALL), 200, "Location not pullable")
        return d

    def assertManifest(self, repo, ref, body, media_type):
        """GET and HEAD by ref: exact bytes, Content-Type, digest, ETag, 304 on If-None-Match."""
        d = digest(body)
        r = self.mget(repo, ref)
        self.assertStatus(r, 200)  # spec MUST
        self.assertTrue(r.body == body, "manifest bytes differ from what was pushed" + r.describe())
        # spec: Content-Type MUST be the manifest's media type (without parameters SHOULD)
        self.assertEqual((r.header("Content-Type") or "").split(";")[0].strip(), media_type,
                         r.describe())
        self.assertHeader(r, "Docker-Content-Digest", d)
        self.assertHeader(r, "Content-Length", str(len(body)))
        etag = self.assertHeader(r, "ETag")  # Distribution: the quoted digest
        h = self.mget(repo, ref, "HEAD")
        self.assertStatus(h, 200)
        self.assertHeader(h, "Docker-Content-Digest", d)
        self.assertHeader(h, "Content-Length", str(len(body)))
        self.assertEqual((h.header("Content-Type") or "").split(";")[0].strip(), media_type)
        self.assertNoBody(h)
        n = self.mget(repo, ref, headers={"If-None-Match": etag})
        self.assertStatus(n, 304)  # Distribution
        self.assertNoBody(n)


class PushPullTest(ManifestTestCase):
    def test_oci_manifest_by_tag_and_digest(self):
        repo = self.repo()
        img = self.c.push_image(repo, "v1")
        self.assertManifest(repo, "v1", img["manifest"], OCI_MANIFEST)
        self.assertManifest(repo, img["digest"], img["manifest"], OCI_MANIFEST)

    def test_put_returns_location_and_digest(self):
        repo = self.repo()
        img = self.c.push_image(repo, "v1")
        r = self.c.put_manifest(repo, "v2", img["manifest"])
        self.assertPushed(r, repo, img["manifest"])
        r = self.c.put_manifest(repo, img["digest"], img["manifest"])
        self.assertPushed(r, repo, img["manifest"])

    def test_oci_manifest_push_by_digest_only(self):
        repo = self.repo()
        img = self.c.push_image(repo, None, seed="by digest")
        self.assertManifest(repo, img["digest"], img["manifest"], OCI_MANIFEST)

    def test_docker_schema2_manifest(self):
        repo = self.repo()
        img = self.c.push_image(repo, "d1", media_type=DOCKER_MANIFEST)
        self.assertManifest(repo, "d1", img["manifest"], DOCKER_MANIFEST)
        self.assertManifest(repo, img["digest"], img["manifest"], DOCKER_MANIFEST)

    def test_oci_index(self):
        repo = self.repo()
        a = self.c.push_image(repo, None, seed="amd64")
        b = self.c.push_image(repo, None, seed="arm64")
        idx = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX,
                         "manifests": [child(a, architecture="amd64", os="linux"),
                                       child(b, architecture="arm64", os="linux")],
                         "annotations": {"org.example": "index"}})
        r = self.c.put_manifest(repo, "multi", idx, OCI_INDEX)
        self.assertPushed(r, repo, idx)
        self.assertManifest(repo, "multi", idx, OCI_INDEX)
        self.assertManifest(repo, digest(idx), idx, OCI_INDEX)

    def test_docker_manifest_list(self):
        repo = self.repo()
        a = self.c.push_image(repo, None, seed="amd64", media_type=DOCKER_MANIFEST)
        b = self.c.push_image(repo, None, seed="arm64", media_type=DOCKER_MANIFEST)
        lst = canonical({"schemaVersion": 2, "mediaType": DOCKER_LIST,
                         "manifests": [child(a, architecture="amd64", os="linux"),
                                       child(b, architecture="arm64", os="linux")]})
        r = self.c.put_manifest(repo, "list", lst, DOCKER_LIST)
        self.assertPushed(r, repo, lst)
        self.assertManifest(repo, "list", lst, DOCKER_LIST)
        self.assertManifest(repo, digest(lst), lst, DOCKER_LIST)

    def test_index_of_indexes(self):
        repo = self.repo()
        a = self.c.push_image(repo, None, seed="leaf")
        inner = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child(a)]})
        self.c.push_manifest(repo, digest(inner), inner, OCI_INDEX)
        outer = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX,
                           "manifests": [{"mediaType": OCI_INDEX, "digest": digest(inner),
                                          "size": len(inner)}]})
        self.assertPushed(self.c.put_manifest(repo, "outer", outer, OCI_INDEX), repo, outer)

    def test_bytes_kept_exactly(self):
        # spec: the registry MUST store the manifest exactly as provided
        repo = self.repo()
        img = self.c.push_image(repo, "base")
        m = img["obj"]
        body = (b'\n  {\t"layers" :  ' + json.dumps(m["layers"], indent=3).encode() +
                b',\r\n"annotations":{"z":"1","a":"\\u00e9\xc3\xa9"},' +
                b'  "config":' + json.dumps(m["config"], indent=1).encode() +
                b',"mediaType"  :"' + OCI_MANIFEST.encode() + b'",   "schemaVersion": 2 }  \n\n')
        json.loads(body)  # still valid JSON
        r = self.c.put_manifest(repo, "odd", body)
        self.assertPushed(r, repo, body)
        self.assertManifest(repo, "odd", body, OCI_MANIFEST)
        self.assertManifest(repo, digest(body), body, OCI_MANIFEST)

    def test_content_type_parameters_ignored(self):
        repo = self.repo()
        img = self.c.push_image(repo, "base")
        r = self.c.put_manifest(repo, "params", img["manifest"], OCI_MANIFEST + "; charset=utf-8")
        self.assertStatus(r, 201)  # spec: registries SHOULD ignore parameters
        self.assertManifest(repo, "params", img["manifest"], OCI_MANIFEST)

    def test_manifest_without_layers(self):
        repo = self.repo()
        self.c.push_blob(repo, b"{}")
        body = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": descriptor(b"{}", OCI_EMPTY), "layers": []})
        self.assertPushed(self.c.put_manifest(repo, "empty", body), repo, body)

    def test_retag_moves_tag(self):
        repo = self.repo()
        a = self.c.push_image(repo, "t", seed="first")
        b = self.c.push_image(repo, None, seed="second")
        self.c.push_manifest(repo, "t", b["manifest"])
        r = self.mget(repo, "t")
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b["manifest"])
        self.assertStatus(self.mget(repo, a["digest"]), 200)

    def test_foreign_layers_accepted_without_blob(self):
        repo = self.repo()
        img = self.c.push_image(repo, "base")
        oci = dict(img["obj"])
        oci["layers"] = img["layers"] + [descriptor(b"not here", OCI_LAYER_NONDIST,
                                                     urls=["https://example.com/layer.tgz"])]
        body = canonical(oci)
        # image-spec: non-distributable layers with urls need not be in the registry
        self.assertPushed(self.c.put_manifest(repo, "oci-foreign", body), repo, body)
        dk = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
              "config": dict(img["obj"]["config"], mediaType=DOCKER_CONFIG),
              "layers": [descriptor(b"windows base", DOCKER_FOREIGN,
                                    urls=["https://example.com/base.tgz"])]}
        body = canonical(dk)
        self.assertPushed(self.c.put_manifest(repo, "docker-foreign", body, DOCKER_MANIFEST), repo, body)
        self.assertManifest(repo, "docker-foreign", body, DOCKER_MANIFEST)


class ValidationTest(ManifestTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.r = "manifests/validation"
        cls.img = cls.c.push_image(cls.r, "base")

    def put(self, ref, obj, media_type=OCI_MANIFEST):
        return self.c.put_manifest(self.r, ref, obj if isinstance(obj, bytes) else canonical(obj),
                                   media_type)

    def assertNotStored(self, ref):
        self.assertStatus(self.mget(self.r, ref), 404, "rejected manifest must not be stored")

    def test_missing_layer_blob(self):
        m = dict(self.img["obj"], layers=[descriptor(b"missing layer", OCI_LAYER)])
        # spec: MAY reject; when it does MUST be MANIFEST_BLOB_UNKNOWN
        self.assertError(self.put("nolayer", m), 400, "MANIFEST_BLOB_UNKNOWN")
        self.assertNotStored("nolayer")

    def test_missing_config_blob(self):
        m = dict(self.img["obj"], config=descriptor(b"missing config", OCI_CONFIG))
        self.assertError(self.put("noconfig", m), 400, "MANIFEST_BLOB_UNKNOWN")
        self.assertNotStored("noconfig")

    def test_docker_missing_layer_blob(self):
        m = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
             "config": dict(self.img["obj"]["config"], mediaType=DOCKER_CONFIG),
             "layers": [descriptor(b"missing docker layer", DOCKER_LAYER)]}
        self.assertError(self.put("dnolayer", m, DOCKER_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN")

    def test_blob_of_other_repo_is_unknown_here(self):
        other = self.repo()
        data = b"only in the other repository"
        self.c.push_blob(other, data)
        m = dict(self.img["obj"], layers=[descriptor(data, OCI_LAYER)])
        self.assertError(self.put("foreignrepo", m), 400, "MANIFEST_BLOB_UNKNOWN")

    def test_index_missing_child(self):
        idx = {"schemaVersion": 2, "mediaType": OCI_INDEX,
               "manifests": [descriptor(b"no such manifest", OCI_MANIFEST)]}
        # Distribution: 400 MANIFEST_BLOB_UNKNOWN (MANIFEST_UNKNOWN also acceptable per the brief)
        self.assertError(self.put("badindex", idx, OCI_INDEX), 400,
                         ("MANIFEST_BLOB_UNKNOWN", "MANIFEST_UNKNOWN"))
        self.assertNotStored("badindex")
        lst = {"schemaVersion": 2, "mediaType": DOCKER_LIST,
               "manifests": [descriptor(b"no such manifest", DOCKER_MANIFEST)]}
        self.assertError(self.put("badlist", lst, DOCKER_LIST), 400,
                         ("MANIFEST_BLOB_UNKNOWN", "MANIFEST_UNKNOWN"))

    def test_schema1_rejected(self):
        s1 = {"schemaVersion": 1, "name": self.r, "tag": "s1", "architecture": "amd64",
              "fsLayers": [{"blobSum": digest(b"x")}], "history": [{"v1Compatibility": "{}"}]}
        # Distribution 2.8 (default config) refuses schema1: 400 MANIFEST_INVALID
        self.assertError(self.put("s1", s1, DOCKER_SCHEMA1), 400, "MANIFEST_INVALID")
        self.assertError(self.put("s1", s1, DOCKER_SCHEMA1_SIGNED), 400, "MANIFEST_INVALID")
        self.assertNotStored("s1")

    def test_invalid_json(self):
        for bad in (b"{not json", b"", b"[]", b'"string"', b"{\"schemaVersion\": 2,"):
            self.assertError(self.put("badjson", bad), 400, "MANIFEST_INVALID", repr(bad))
        self.assertNotStored("badjson")

    def test_media_type_contradicts_content_type(self):
        # body says OCI manifest, header says Docker schema2: Distribution 400 MANIFEST_INVALID
        self.assertError(self.put("mismatch", self.img["manifest"], DOCKER_MANIFEST), 400,
                         "MANIFEST_INVALID")
        self.assertNotStored("mismatch")

    def test_too_large_rejected(self):
        m = dict(self.img["obj"], annotations={"pad": "x" * (4 * 1024 * 1024 + 100)})
        r = self.put("huge", m)
        # spec SHOULD 413 for a manifest over the limit; Distribution: 400 MANIFEST_INVALID
        self.assertStatus(r, (413, 400))
        if r.status == 400:
            self.assertError(r, 400, "MANIFEST_INVALID")
        self.assertNotStored("huge")

    def test_just_under_4mib_accepted(self):
        # spec: registries SHOULD accept manifests of at least 4 MiB (Distribution's limit is 4 MiB)
        m = dict(self.img["obj"], annotations={"pad": ""})
        size = len(canonical(m))
        m["annotations"]["pad"] = "y" * (4 * 1024 * 1024 - size - 16)
        body = canonical(m)
        self.assertLess(len(body), 4 * 1024 * 1024)
        r = self.put("big", body)
        self.assertPushed(r, self.r, body)
        got = self.mget(self.r, "big")
        self.assertTrue(got.body == body, "large manifest bytes differ")

    def test_put_by_digest_mismatch(self):
        wrong = digest(b"some other body")
        # Distribution: 400 DIGEST_INVALID
        self.assertError(self.put(wrong, self.img["manifest"]), 400, "DIGEST_INVALID")
        self.assertNotStored(wrong)

    @reference_deviation("2.8 answers 500 (storage path error)")
    def test_put_by_malformed_digest(self):
        r = self.put("sha256:abc", self.img["manifest"])
        self.assertStatus(r, (400, 404))  # neither a tag nor a digest


class NotFoundTest(ManifestTestCase):
    def test_unknown_tag_404(self):
        repo = self.repo()
        self.c.push_image(repo, "exists")
        self.assertError(self.mget(repo, "nope"), 404, "MANIFEST_UNKNOWN")  # spec MUST 404
        h = self.mget(repo, "nope", "HEAD")
        self.assertStatus(h, 404)
        self.assertNoBody(h)

    def test_unknown_digest_404(self):
        repo = self.repo()
        self.c.push_image(repo, "exists")
        self.assertError(self.mget(repo, digest(b"unknown")), 404, "MANIFEST_UNKNOWN")
        self.assertStatus(self.mget(repo, digest(b"unknown"), "HEAD"), 404)

    def test_unknown_repo_404(self):
        repo = self.repo("nosuch")
        # spec MUST 404; Distribution says MANIFEST_UNKNOWN, NAME_UNKNOWN is as accurate
        self.assertError(self.mget(repo, "latest"), 404, ("NAME_UNKNOWN", "MANIFEST_UNKNOWN"))
        self.assertError(self.mget(repo, digest(b"x")), 404, ("NAME_UNKNOWN", "MANIFEST_UNKNOWN"))

    def test_manifest_of_other_repo_404(self):
        a, b = self.repo(), self.repo()
        img = self.c.push_image(a, "v1")
        self.c.push_image(b, "v1", seed="other")
        self.assertError(self.mget(b, img["digest"]), 404, "MANIFEST_UNKNOWN")

    @reference_deviation("2.8 answers 500 when a blob digest is asked for as a manifest")
    def test_blob_digest_is_not_a_manifest(self):
        repo = self.repo()
        img = self.c.push_image(repo, "v1")
        self.assertStatus(self.mget(repo, digest(img["config"])), 404)


class DeleteTest(ManifestTestCase):
    @reference_deviation("2.8 cannot delete tags (400 DIGEST_INVALID)")
    def test_delete_tag_keeps_manifest(self):
        repo = self.repo()
        img = self.c.push_image(repo, "v1")
        self.c.push_manifest(repo, "v2", img["manifest"])
        r = self.c.delete("/v2/%s/manifests/v1" % repo)
        self.assertStatus(r, 202)  # spec MUST 202 when tag deletion is supported
        self.assertError(self.mget(repo, "v1"), 404, "MANIFEST_UNKNOWN")  # spec: then 404
        self.assertStatus(self.mget(repo, img["digest"]), 200, "digest must still pull")
        self.assertStatus(self.mget(repo, "v2"), 200, "other tags stay")
        tags = self.c.get("/v2/%s/tags/list" % repo).json()["tags"]
        self.assertEqual(tags, ["v2"])

    @reference_deviation("2.8 cannot delete tags (400 DIGEST_INVALID)")
    def test_delete_unknown_tag_404(self):
        repo = self.repo()
        self.c.push_image(repo, "v1")
        self.assertError(self.c.delete("/v2/%s/manifests/nope" % repo), 404, "MANIFEST_UNKNOWN")

    def test_delete_by_digest_removes_manifest_and_tags(self):
        repo = self.repo()
        img = self.c.push_image(repo, "v1")
        self.c.push_manifest(repo, "v2", img["manifest"])
        keep = self.c.push_image(repo, "keep", seed="keep")
        r = self.c.delete("/v2/%s/manifests/%s" % (repo, img["digest"]))
        self.assertStatus(r, 202)  # spec MUST 202
        # spec: then GET by digest and by any tag pointing to it returns 404
        self.assertError(self.mget(repo, img["digest"]), 404, "MANIFEST_UNKNOWN")
        self.assertError(self.mget(repo, "v1"), 404, "MANIFEST_UNKNOWN")
        self.assertError(self.mget(repo, "v2"), 404, "MANIFEST_UNKNOWN")
        self.assertStatus(self.mget(repo, "v1", "HEAD"), 404)
        self.assertStatus(self.mget(repo, "keep"), 200)
        self.assertStatus(self.mget(repo, keep["digest"]), 200)
        r = self.c.get("/v2/%s/tags/list" % repo)
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["tags"], ["keep"])
        # blobs are not deleted with the manifest
        self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (repo, digest(img["config"]))), 200)
        # deleting again: 404
        self.assertError(self.c.delete("/v2/%s/manifests/%s" % (repo, img["digest"])), 404,
                         "MANIFEST_UNKNOWN")

    def test_push_again_after_delete(self):
        repo = self.repo()
        img = self.c.push_image(repo, "v1")
        self.assertStatus(self.c.delete("/v2/%s/manifests/%s" % (repo, img["digest"])), 202)
        self.c.push_manifest(repo, "v1", img["manifest"])
        r = self.mget(repo, "v1")
        self.assertStatus(r, 200)
        self.assertEqual(r.body, img["manifest"])

    def test_delete_unknown_digest_404(self):
        repo = self.repo()
        self.c.push_image(repo, "v1")
        self.assertError(self.c.delete("/v2/%s/manifests/%s" % (repo, digest(b"no"))), 404,
                         "MANIFEST_UNKNOWN")

    def test_delete_in_unknown_repo_404(self):
        # spec: if the repository does not exist, MUST 404
        r = self.c.delete("/v2/%s/manifests/%s" % (self.repo("nosuch"), digest(b"no")))
        self.assertError(r, 404, ("NAME_UNKNOWN", "MANIFEST_UNKNOWN"))


class DeleteDisabledTest(ManifestTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = berthtest.server(delete=False)
        cls.c = cls.srv.client()

    def test_delete_disabled_405(self):
        repo = self.repo()
        img = self.c.push_image(repo, "v1")
        # spec: MUST 400 or 405 when deletion is disabled; Distribution: 405 UNSUPPORTED
        self.assertError(self.c.delete("/v2/%s/manifests/%s" % (repo, img["digest"])), 405,
                         "UNSUPPORTED")
        self.assertError(self.c.delete("/v2/%s/manifests/v1" % repo), 405, "UNSUPPORTED")
        self.assertStatus(self.mget(repo, "v1"), 200)
        self.assertStatus(self.mget(repo, img["digest"]), 200)


class SubjectTest(ManifestTestCase):
    @reference_deviation("2.8 predates distribution-spec 1.1: no OCI-Subject header")
    def test_oci_subject_header(self):
        repo = self.repo()
        img = self.c.push_image(repo, "v1")
        self.c.push_blob(repo, b"{}")
        art = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                         "artifactType": "application/vnd.example.sig",
                         "config": descriptor(b"{}", OCI_EMPTY),
                         "layers": [descriptor(b"{}", OCI_EMPTY)],
                         "subject": child(img)})
        r = self.c.put_manifest(repo, digest(art), art)
        self.assertStatus(r, 201)
        # spec 1.1: a registry that processes subject MUST answer with OCI-Subject
        self.assertHeader(r, "OCI-Subject", img["digest"])

    def test_subject_need_not_exist(self):
        # spec 1.1: a registry MUST accept a manifest whose subject does not exist yet
        repo = self.repo()
        self.c.push_blob(repo, b"{}")
        subject = {"mediaType": OCI_MANIFEST, "digest": digest(b"not pushed yet"), "size": 14}
        art = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                         "config": descriptor(b"{}", OCI_EMPTY), "layers": [],
                         "subject": subject})
        r = self.c.put_manifest(repo, digest(art), art)
        self.assertStatus(r, 201)
        if not berthtest.reference_mode():
            self.assertHeader(r, "OCI-Subject", subject["digest"])


if __name__ == "__main__":
    berthtest.main()
