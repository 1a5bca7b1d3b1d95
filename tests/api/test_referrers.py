"""The referrers API of distribution-spec 1.1 (GET /v2/<name>/referrers/<digest>, end-12).
Distribution 2.8 has no referrers API: these tests are skipped against it."""

import urllib.parse

import berthtest
from berthtest import (OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, berth_only, canonical, descriptor,
                       digest, setUpModule, tearDownModule)  # noqa: F401

SBOM = "application/vnd.example.sbom.v1"
SIG = "application/vnd.example.signature.v1"
CFG_TYPE = "application/vnd.example.config.v1+json"


def subject_of(img):
    return {"mediaType": img["media_type"], "digest": img["digest"], "size": len(img["manifest"])}


class ReferrersTest(berthtest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if berthtest.reference_mode():
            return
        c = cls.c
        cls.r = "referrers/app"
        cls.img = c.push_image(cls.r, "v1")
        c.push_blob(cls.r, b"{}")
        cfg = b'{"config":"of an artifact"}'
        c.push_blob(cls.r, cfg)
        layer = b"sbom contents"
        c.push_blob(cls.r, layer)
        subj = subject_of(cls.img)
        # 1) artifactType set explicitly, empty config
        cls.sbom = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SBOM,
                              "config": descriptor(b"{}", OCI_EMPTY),
                              "layers": [descriptor(layer, "application/spdx+json")],
                              "subject": subj,
                              "annotations": {"org.example.kind": "sbom", "n": "1"}})
        # 2) no artifactType: the config's mediaType stands in for it
        cls.cfgart = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                "config": descriptor(cfg, CFG_TYPE),
                                "layers": [descriptor(b"{}", OCI_EMPTY)],
                                "subject": subj,
                                "annotations": {"org.example.kind": "config-typed"}})
        # 3) another artifactType, no annotations
        cls.sig = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SIG,
                             "config": descriptor(b"{}", OCI_EMPTY),
                             "layers": [descriptor(b"{}", OCI_EMPTY)],
                             "subject": subj})
        # 4) an index with a subject and no artifactType
        cls.idx = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX,
                             "manifests": [subj], "subject": subj,
                             "annotations": {"org.example.kind": "index"}})
        cls.pushed = {}
        for name, body, mt in (("sbom", cls.sbom, OCI_MANIFEST), ("cfgart", cls.cfgart, OCI_MANIFEST),
                               ("sig", cls.sig, OCI_MANIFEST), ("idx", cls.idx, OCI_INDEX)):
            cls.pushed[name] = c.put_manifest(cls.r, digest(body), body, mt)
        # a manifest without subject and an unrelated referrer in another repository
        c.push_image(cls.r, "other", seed="not a referrer")
        other = "referrers/elsewhere"
        c.push_blob(other, b"{}")
        elsewhere = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SBOM,
                               "config": descriptor(b"{}", OCI_EMPTY), "layers": [],
                               "subject": subj})
        c.push_manifest(other, digest(elsewhere), elsewhere)

    def referrers(self, repo, d, query=""):
        r = self.c.get("/v2/%s/referrers/%s%s" % (repo, d, query))
        self.assertStatus(r, 200)  # spec MUST 200 (and MUST NOT 404)
        self.assertEqual((r.header("Content-Type") or "").split(";")[0].strip(), OCI_INDEX,
                         "Content-Type" + r.describe())  # spec MUST
        doc = r.json()
        self.assertEqual(doc.get("schemaVersion"), 2, r.describe())
        self.assertEqual(doc.get("mediaType"), OCI_INDEX, r.describe())
        self.assertIsInstance(doc.get("manifests"), list, "manifests must be an array" + r.describe())
        return r, doc["manifests"]

    def by_digest(self, manifests):
        out = {}
        for m in manifests:
            self.assertNotIn(m["digest"], out, "duplicate descriptor %s" % m["digest"])
            out[m["digest"]] = m
        return out

    @berth_only("no referrers API")
    def test_push_answers_oci_subject(self):
        for name, r in self.pushed.items():
            self.assertStatus(r, 201, name)
            self.assertHeader(r, "OCI-Subject", self.img["digest"], name)  # spec 1.1 MUST

    @berth_only("no referrers API")
    def test_lists_all_referrers_with_descriptors(self):
        _, ms = self.referrers(self.r, self.img["digest"])
        got = self.by_digest(ms)
        expected = {digest(self.sbom): (OCI_MANIFEST, self.sbom, SBOM,
                                        {"org.example.kind": "sbom", "n": "1"}),
                    digest(self.cfgart): (OCI_MANIFEST, self.cfgart, CFG_TYPE,
                                          {"org.example.kind": "config-typed"}),
                    digest(self.sig): (OCI_MANIFEST, self.sig, SIG, None),
                    digest(self.idx): (OCI_INDEX, self.idx, None, {"org.example.kind": "index"})}
        self.assertEqual(set(got), set(expected), "referrers listed: %s" % ms)
        for d, (mt, body, at, ann) in expected.items():
            desc = got[d]
            self.assertEqual(desc.get("mediaType"), mt, desc)
            self.assertEqual(desc.get("size"), len(body), desc)
            # spec MUST: artifactType of the manifest, else its config mediaType; omitted for an
            # index without one
            self.assertEqual(desc.get("artifactType"), at, desc)
            # spec MUST: all annotations of the referrer
            self.assertEqual(desc.get("annotations") or None, ann, desc)

    @berth_only("no referrers API")
    def test_filter_by_artifact_type(self):
        r, ms = self.referrers(self.r, self.img["digest"],
                               "?artifactType=" + urllib.parse.quote(SBOM, safe=""))
        self.assertHeader(r, "OCI-Filters-Applied", "artifactType")  # spec MUST when filtered
        self.assertEqual([m["digest"] for m in ms], [digest(self.sbom)])
        r, ms = self.referrers(self.r, self.img["digest"],
                               "?artifactType=" + urllib.parse.quote(CFG_TYPE, safe=""))
        self.assertHeader(r, "OCI-Filters-Applied", "artifactType")
        self.assertEqual([m["digest"] for m in ms], [digest(self.cfgart)])
        r, ms = self.referrers(self.r, self.img["digest"], "?artifactType=application/x-none")
        self.assertHeader(r, "OCI-Filters-Applied", "artifactType")
        self.assertEqual(ms, [])

    @berth_only("no referrers API")
    def test_no_filter_header_without_filter(self):
        r, _ = self.referrers(self.r, self.img["digest"])
        self.assertIsNone(r.header("OCI-Filters-Applied"), r.describe())

    @berth_only("no referrers API")
    def test_no_referrers_empty_index(self):
        # the manifest tagged "other" exists but nothing refers to it; spec MUST empty list
        _, ms = self.referrers(self.r, digest(self.sbom))
        self.assertEqual(ms, [])

    @berth_only("no referrers API")
    def test_unknown_subject_empty_index(self):
        _, ms = self.referrers(self.r, digest(b"no such manifest"))
        self.assertEqual(ms, [])

    @berth_only("no referrers API")
    def test_subject_need_not_exist(self):
        repo = self.repo()
        self.c.push_blob(repo, b"{}")
        missing = {"mediaType": OCI_MANIFEST, "digest": digest(b"pushed later"), "size": 12}
        art = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SIG,
                         "config": descriptor(b"{}", OCI_EMPTY), "layers": [], "subject": missing})
        r = self.c.put_manifest(repo, digest(art), art)
        self.assertStatus(r, 201)  # spec 1.1 MUST accept
        self.assertHeader(r, "OCI-Subject", missing["digest"])
        _, ms = self.referrers(repo, missing["digest"])
        self.assertEqual([m["digest"] for m in ms], [digest(art)])
        self.assertEqual(ms[0].get("artifactType"), SIG)

    @berth_only("no referrers API")
    def test_scoped_to_repository(self):
        _, ms = self.referrers("referrers/elsewhere", self.img["digest"])
        self.assertEqual(len(ms), 1)
        _, ms = self.referrers(self.r, self.img["digest"])
        self.assertEqual(len(ms), 4)

    @berth_only("no referrers API")
    def test_unknown_repository(self):
        # spec 1.1: a registry with the referrers API MUST NOT answer 404
        _, ms = self.referrers(self.repo("nosuch"), self.img["digest"])
        self.assertEqual(ms, [])

    @berth_only("no referrers API")
    def test_invalid_digest_400(self):
        r = self.c.get("/v2/%s/referrers/sha256:abc" % self.r)
        self.assertStatus(r, 400)  # spec 1.1 MUST 400 for an invalid digest
        r = self.c.get("/v2/%s/referrers/latest" % self.r)
        self.assertStatus(r, 400)

    @berth_only("no referrers API")
    def test_deleted_referrer_disappears(self):
        repo = self.repo()
        img = self.c.push_image(repo, "v1")
        self.c.push_blob(repo, b"{}")
        art = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SIG,
                         "config": descriptor(b"{}", OCI_EMPTY), "layers": [],
                         "subject": subject_of(img)})
        self.c.push_manifest(repo, digest(art), art)
        _, ms = self.referrers(repo, img["digest"])
        self.assertEqual(len(ms), 1)
        self.assertStatus(self.c.delete("/v2/%s/manifests/%s" % (repo, digest(art))), 202)
        _, ms = self.referrers(repo, img["digest"])
        self.assertEqual(ms, [])

    @berth_only("no referrers API")
    def test_referrer_pushed_by_tag(self):
        repo = self.repo()
        img = self.c.push_image(repo, "v1")
        self.c.push_blob(repo, b"{}")
        art = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SBOM,
                         "config": descriptor(b"{}", OCI_EMPTY), "layers": [],
                         "subject": subject_of(img)})
        r = self.c.put_manifest(repo, "sbom-tag", art)
        self.assertStatus(r, 201)
        self.assertHeader(r, "OCI-Subject", img["digest"])
        _, ms = self.referrers(repo, img["digest"])
        self.assertEqual([m["digest"] for m in ms], [digest(art)])
        # pushing the same referrer again (by digest) does not duplicate it
        self.c.push_manifest(repo, digest(art), art)
        _, ms = self.referrers(repo, img["digest"])
        self.assertEqual(len(ms), 1)


if __name__ == "__main__":
    berthtest.main()
