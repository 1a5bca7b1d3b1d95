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

    def test_head_sends_no_body_bytes(self):
        # http.client never reads a HEAD body, so look at the raw bytes on the wire
        repo = self.repo()
        img = self.c.push_image(repo, "v1")
        for path in ("/v2/", "/v2/%s/blobs/%s" % (repo, digest(img["config"])),
                     "/v2/%s/manifests/v1" % repo, "/v2/%s/manifests/nope" % repo,
                     "/v2/%s/blobs/%s" % (repo, digest(b"missing"))):
            req = ("HEAD %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: %s\r\nConnection: close\r\n\r\n"
                   % (path, ACCEPT_ALL["Accept"])).encode()
            status, raw = self.c.raw(req)
            self.assertIn(status, (200, 404), raw[:300])
            head, sep, rest = raw.partition(b"\r\n\r\n")
            self.assertTrue(sep, "no end of headers: %r" % raw[:300])
            self.assertEqual(rest, b"", "HEAD %s: %d body bytes after the headers" % (path, len(rest)))

    def test_keep_alive_across_errors(self):
        # real clients reuse connections; an error answered before the body was read must not
        # leave that body to be parsed as the next request
        repo = self.repo()
        img = self.c.push_image(repo, "v1")
        s = self.c.session()
        try:
            steps = [
                ("GET", "/v2/", None, {}, 200),
                ("PUT", "/v2/%s/manifests/bad" % repo, b"{not json" + b" " * 5000,
                 {"Content-Type": OCI_MANIFEST}, 400),
                ("GET", "/v2/%s/manifests/v1" % repo, None, ACCEPT_ALL, 200),
                ("PUT", "/v2/%s/blobs/uploads/%s?digest=%s" % (
                    repo, "0badc0de-0000-4000-8000-000000000000", digest(b"x" * 9000)),
                 b"x" * 9000, {}, 404),
                ("GET", "/v2/%s/tags/list" % repo, None, {}, 200),
                ("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, digest(b"zz")), b"y" * 7000, {},
                 (400, 202)),
                ("HEAD", "/v2/%s/manifests/v1" % repo, None, ACCEPT_ALL, 200),
                ("GET", "/v2/%s/blobs/%s" % (repo, digest(img["config"])), None, {}, 200),
            ]
            for method, path, body, headers, expected in steps:
                try:
                    r = s.request(method, path, body=body, headers=headers)
                except (OSError, berthtest.http.client.HTTPException) as e:
                    self.fail("%s %s on a kept-alive connection: %r (the server closed the "
                              "connection without Connection: close?)" % (method, path, e))
                self.assertStatus(r, expected, "%s %s on a kept-alive connection" % (method, path))
        finally:
            s.close()


class RoutingTest(berthtest.TestCase):
    # Distribution's router matches the name greedily, so names whose components are the API's
    # own words (manifests, blobs, uploads, tags, list, referrers, v2) are ordinary names
    NAMES = ["route/manifests", "route/blobs", "route/blobs/uploads", "route/tags",
             "route/tags/list", "manifests/route", "blobs", "route/referrers", "v2",
             "route/manifests/latest/manifests"]

    def test_api_words_in_names(self):
        for name in self.NAMES:
            img = self.c.push_image(name, "latest", seed=name)
            r = self.c.get("/v2/%s/manifests/latest" % name, headers=ACCEPT_ALL)
            self.assertStatus(r, 200, name)
            self.assertEqual(r.body, img["manifest"], "repository %s served another manifest" % name)
            r = self.c.get("/v2/%s/tags/list" % name)
            self.assertStatus(r, 200, name)
            self.assertEqual(r.json(), {"name": name, "tags": ["latest"]})
            r = self.c.get("/v2/%s/blobs/%s" % (name, digest(img["config"])))
            self.assertStatus(r, 200, name)
            self.assertEqual(r.body, img["config"])
        cat = self.c.get("/v2/_catalog").json()["repositories"]
        for name in self.NAMES:
            self.assertIn(name, cat)

    def test_nested_repositories_are_separate(self):
        outer, inner = "nest/a", "nest/a/b"
        o = self.c.push_image(outer, "outer-tag", seed="outer")
        i = self.c.push_image(inner, "inner-tag", seed="inner")
        self.assertEqual(self.c.get("/v2/%s/tags/list" % outer).json()["tags"], ["outer-tag"])
        self.assertEqual(self.c.get("/v2/%s/tags/list" % inner).json()["tags"], ["inner-tag"])
        self.assertStatus(self.c.get("/v2/%s/manifests/inner-tag" % outer, headers=ACCEPT_ALL), 404)
        self.assertStatus(self.c.get("/v2/%s/manifests/%s" % (inner, o["digest"]), headers=ACCEPT_ALL),
                          404)
        self.assertStatus(self.c.get("/v2/%s/blobs/%s" % (outer, digest(i["config"]))), 404)
        self.assertStatus(self.c.get("/v2/nest/tags/list"), 404)


if __name__ == "__main__":
    berthtest.main()
