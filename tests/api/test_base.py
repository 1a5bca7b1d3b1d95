"""GET /v2/ (end-1), the Docker-Distribution-API-Version header, unknown routes and methods."""

import berthtest
from berthtest import (ACCEPT_ALL, OCI_MANIFEST, digest, setUpModule,  # noqa: F401
                       tearDownModule)

API_VERSION = "registry/2.0"


class BaseTest(berthtest.TestCase):
    def test_v2_root_answers_200(self):
        r = self.c.get("/v2/")
        # spec end-1: 200 means the registry implements the spec
        self.assertStatus(r, 200)
        # spec "API Version Check" (Docker API): SHOULD be set on 200 -> Distribution always sets it
        self.assertHeader(r, "Docker-Distribution-API-Version", API_VERSION)

    def test_v2_root_head(self):
        r = self.c.head("/v2/")
        self.assertStatus(r, 200)
        self.assertHeader(r, "Docker-Distribution-API-Version", API_VERSION)
        self.assertNoBody(r)

    def test_api_version_header_on_every_response(self):
        # Distribution sets the header app-wide, errors and unknown routes included: follow it.
        repo = self.repo()
        img = self.c.push_image(repo, "v1")
        cfg = digest(img["config"])
        up = self.c.start_upload(repo)
        requests = [
            ("GET", "/v2/", None, {}),
            ("GET", "/v2/_catalog", None, {}),
            ("GET", "/v2/%s/tags/list" % repo, None, {}),
            ("GET", "/v2/%s/manifests/v1" % repo, None, ACCEPT_ALL),
            ("HEAD", "/v2/%s/manifests/v1" % repo, None, ACCEPT_ALL),
            ("GET", "/v2/%s/blobs/%s" % (repo, cfg), None, {}),
            ("HEAD", "/v2/%s/blobs/%s" % (repo, cfg), None, {}),
            ("GET", self.c.resolve(up.header("Location")), None, {}),
            ("POST", "/v2/%s/blobs/uploads/" % repo, b"", {}),
            # errors
            ("GET", "/v2/%s/blobs/%s" % (repo, digest(b"missing")), None, {}),
            ("HEAD", "/v2/%s/blobs/%s" % (repo, digest(b"missing")), None, {}),
            ("GET", "/v2/%s/blobs/sha256:abc" % repo, None, {}),
            ("GET", "/v2/%s/manifests/nope" % repo, None, ACCEPT_ALL),
            ("GET", "/v2/no/such/repo/tags/list", None, {}),
            ("PUT", "/v2/%s/manifests/bad" % repo, b"{nope", {"Content-Type": OCI_MANIFEST}),
            ("GET", "/v2/%s/blobs/uploads/%s" % (repo, "0" * 8 + "-0000-4000-8000-" + "0" * 12),
             None, {}),
            ("GET", "/v3/", None, {}),
            ("GET", "/v2/%s/nonsense" % repo, None, {}),
            ("DELETE", "/v2/_catalog", None, {}),
        ]
        bad = []
        for method, path, body, headers in requests:
            r = self.c.request(method, path, body=body, headers=headers)
            if r.header("Docker-Distribution-API-Version") != API_VERSION:
                bad.append(r.describe(200))
        if bad:
            self.fail("responses without Docker-Distribution-API-Version: registry/2.0:\n"
                      + "".join(bad))

    def test_unknown_paths_are_404(self):
        for path in ("/v3/", "/v1/", "/foo", "/v2/%s/nonsense" % self.repo(),
                     "/v2/%s/blobs" % self.repo(), "/v2/%s/manifests/" % self.repo()):
            r = self.c.get(path)
            # spec is silent; Distribution answers 404 for routes it does not know
            self.assertStatus(r, 404, path)

    def test_wrong_method_is_405_or_404(self):
        repo = self.repo()
        img = self.c.push_image(repo, "v1")
        d = digest(img["config"])
        cases = [
            ("DELETE", "/v2/_catalog"),
            ("POST", "/v2/_catalog"),
            ("POST", "/v2/%s/tags/list" % repo),
            ("DELETE", "/v2/%s/tags/list" % repo),
            ("PATCH", "/v2/%s/manifests/v1" % repo),
            ("POST", "/v2/%s/manifests/v1" % repo),
            ("POST", "/v2/%s/blobs/%s" % (repo, d)),
            ("PUT", "/v2/%s/blobs/%s" % (repo, d)),
            ("PATCH", "/v2/%s/blobs/%s" % (repo, d)),
        ]
        for method, path in cases:
            r = self.c.request(method, path, body=b"" if method in ("POST", "PUT", "PATCH") else None)
            # spec silent; Distribution: 405 from its router (404 acceptable per the brief)
            self.assertStatus(r, (405, 404), "%s %s" % (method, path))
        # the resources are untouched
        self.assertStatus(self.c.get("/v2/%s/manifests/v1" % repo, headers=ACCEPT_ALL), 200)
        self.assertStatus(self.c.get("/v2/%s/blobs/%s" % (repo, d)), 200)


if __name__ == "__main__":
    berthtest.main()
