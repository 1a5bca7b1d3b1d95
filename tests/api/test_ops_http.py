"""http.prefix and http.headers, through a real berth process started with a config file.

Distribution mounts its routes under http.prefix (and only there), and every URL it hands out
(upload and blob Locations, pagination Links) carries the prefix so clients can follow it.
http.headers are added to every response of the API."""

import os
import re
import urllib.parse

import berthtest as bt
from berthtest import ACCEPT_ALL, setUpModule  # noqa: F401


def tearDownModule():
    bt.kill_spawned()
    bt.tearDownModule()


def config(root, port, extra):
    return ("version: 0.1\n"
            "log:\n  level: warn\n"
            "storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n"
            "http:\n  addr: 127.0.0.1:%d\n%s" % (root, port, extra))


class PrefixTest(bt.OpsTestCase):
    PREFIX = "/reg/"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        root = os.path.join(cls.tmp, "root")

        def make(port):
            return ["serve", bt.write_file(os.path.join(cls.tmp, "config.yml"),
                                           config(root, port, "  prefix: %s\n" % cls.PREFIX))], {}
        cls.s = bt.spawn_berth(make, cls.tmp)
        cls.c = cls.s.client()

    def setUp(self):
        if not self.s.alive():
            self.fail("berth is no longer running\n" + self.s.describe())

    def p(self, path):
        """path (starting with /v2/) under the prefix."""
        return self.PREFIX.rstrip("/") + path

    def path_of(self, location, what):
        """The path (and query) of a URL berth handed out (Location, Link), which must be under
        the prefix."""
        self.assertTrue(location, "no URL in %s" % what)
        u = urllib.parse.urlsplit(urllib.parse.urljoin(self.s.url + "/", location))
        if not u.path.startswith(self.p("/v2/")):
            self.fail("%s: URL %r is not under http.prefix %s (a client following it gets a "
                      "404)" % (what, location, self.PREFIX))
        return u.path + ("?" + u.query if u.query else "")

    def test_base_under_prefix(self):
        for method in ("GET", "HEAD"):
            r = self.c.request(method, self.p("/v2/"))
            self.assertStatus(r, 200)
            self.assertHeader(r, "Docker-Distribution-API-Version", "registry/2.0")
        self.assertEqual(self.c.get(self.p("/v2/")).json(), {})

    def test_routes_outside_prefix_not_served(self):
        for path in ("/v2/", "/v2/_catalog", "/v2/x/tags/list", "/v2/x/manifests/latest",
                     "/regx/v2/", "/re/v2/", "/v2/reg/v2/"):
            r = self.c.get(path)
            self.assertStatus(r, 404, "%s is outside http.prefix %s" % (path, self.PREFIX))
        r = self.c.post("/v2/outside/blobs/uploads/")
        self.assertStatus(r, 404, "an upload outside the prefix")

    def test_push_and_pull_under_prefix(self):
        repo = "prefix/push"
        data = b"a layer pushed under a prefix " * 50
        r = self.c.post(self.p("/v2/%s/blobs/uploads/" % repo))
        self.assertStatus(r, 202)
        up = self.path_of(r.header("Location"), "POST upload")
        r = self.c.patch(up, data[:100], headers={"Content-Type": "application/octet-stream"})
        self.assertStatus(r, 202)
        up = self.path_of(r.header("Location"), "PATCH upload")
        r = self.c.get(up)
        self.assertStatus(r, 204)
        self.assertHeader(r, "Range", "0-99")
        sep = "&" if "?" in up else "?"
        r = self.c.put(up + sep + "digest=" + bt.digest(data), data[100:])
        self.assertStatus(r, 201)
        blob_path = self.path_of(r.header("Location"), "PUT upload (blob location)")
        r = self.c.get(blob_path)
        self.assertStatus(r, 200)
        self.assertEqual(r.body, data)

        cfg = b'{"architecture":"amd64","os":"linux"}'
        r = self.c.post(self.p("/v2/%s/blobs/uploads/?digest=%s" % (repo, bt.digest(cfg))), cfg,
                        headers={"Content-Type": "application/octet-stream"})
        self.assertStatus(r, 201, "monolithic POST under the prefix")
        self.path_of(r.header("Location"), "monolithic POST (blob location)")
        m = bt.canonical({"schemaVersion": 2, "mediaType": bt.OCI_MANIFEST,
                          "config": bt.descriptor(cfg, bt.OCI_CONFIG),
                          "layers": [bt.descriptor(data, bt.OCI_LAYER)]})
        r = self.c.put(self.p("/v2/%s/manifests/v1" % repo), m,
                       headers={"Content-Type": bt.OCI_MANIFEST})
        self.assertStatus(r, 201)
        self.path_of(r.header("Location"), "PUT manifest")
        r = self.c.get(self.p("/v2/%s/manifests/v1" % repo), headers=ACCEPT_ALL)
        self.assertStatus(r, 200)
        self.assertEqual(r.body, m)
        self.assertStatus(self.c.get("/v2/%s/manifests/v1" % repo, headers=ACCEPT_ALL), 404)
        # cross-repository mount
        r = self.c.post(self.p("/v2/prefix/mounted/blobs/uploads/?mount=%s&from=%s"
                               % (bt.digest(data), repo)))
        self.assertStatus(r, 201)
        self.path_of(r.header("Location"), "mount")
        r = self.c.get(self.p("/v2/_catalog"))
        self.assertStatus(r, 200)
        self.assertIn(repo, r.json()["repositories"])

    def test_pagination_links_under_prefix(self):
        for i in range(3):
            self.c.post(self.p("/v2/pages/r%d/blobs/uploads/?digest=%s" % (i, bt.digest(b"x"))), b"x")
        self.assertStatus(self.c.get(self.p("/v2/pages/r0/blobs/%s" % bt.digest(b"x"))), 200)
        cfg = b'{"os":"linux"}'
        self.c.post(self.p("/v2/pages/r0/blobs/uploads/?digest=%s" % bt.digest(cfg)), cfg)
        m = bt.canonical({"schemaVersion": 2, "mediaType": bt.OCI_MANIFEST,
                          "config": bt.descriptor(cfg, bt.OCI_CONFIG), "layers": []})
        for tag in ("a", "b", "c"):
            r = self.c.put(self.p("/v2/pages/r0/manifests/%s" % tag), m,
                           headers={"Content-Type": bt.OCI_MANIFEST})
            self.assertStatus(r, 201)
        for path in ("/v2/_catalog?n=1", "/v2/pages/r0/tags/list?n=1"):
            r = self.c.get(self.p(path))
            self.assertStatus(r, 200)
            link = self.assertHeader(r, "Link")
            m = re.match(r"^<([^>]+)>", link)
            self.assertTrue(m, "Link %r" % link)
            nxt = self.path_of(m.group(1), "Link of %s" % path)
            self.assertStatus(self.c.get(nxt), 200)


class PrefixWithoutSlashTest(bt.OpsTestCase):
    """prefix: /deep/er (no trailing slash) is the same as /deep/er/."""

    def test_prefix_without_trailing_slash(self):
        root = self.path("root")
        s = self.spawn(lambda port: (["serve", bt.write_file(
            self.path("config.yml"), config(root, port, "  prefix: /deep/er\n"))], {}))
        c = s.client()
        self.assertStatus(c.get("/deep/er/v2/"), 200)
        self.assertStatus(c.get("/v2/"), 404)
        self.assertStatus(c.get("/deep/v2/"), 404)
        self.assertStatus(c.get("/deep/erv2/"), 404)


class HostTest(bt.OpsTestCase):
    """http.host: the URLs berth hands out (upload and blob Locations, pagination Links) are
    absolute, built on it and the prefix, as Distribution builds them; http.relativeurls keeps
    them relative; a host that is not an absolute URL is refused at start-up."""

    HOST = "https://registry.example.com:8443"

    def start(self, extra):
        root = self.path("root-%d" % len(extra))
        return self.spawn(lambda port: (["serve", bt.write_file(
            self.path("config-%d.yml" % len(extra)), config(root, port, extra))], {}))

    def push_and_locations(self, c, base):
        """Pushes a blob in two requests and tags a manifest; the URLs handed out on the way.
        base is the path prefix to reach the server by."""
        repo = "host/x"
        data = b"a blob pushed to a registry with http.host"
        r = c.post(base + "/v2/%s/blobs/uploads/" % repo)
        self.assertStatus(r, 202)
        upload = r.header("Location")
        r = c.put(urllib.parse.urlsplit(upload).path + "?digest=" + bt.digest(data), data)
        self.assertStatus(r, 201)
        blob = r.header("Location")
        r = c.post(base + "/v2/%s/blobs/uploads/?digest=%s" % (repo, bt.digest(b"{}")), b"{}")
        self.assertStatus(r, 201)  # monolithic: the config blob
        img = bt.canonical({"schemaVersion": 2, "mediaType": bt.OCI_MANIFEST,
                            "config": bt.descriptor(b"{}", bt.OCI_CONFIG), "layers": []})
        for t in ("a", "b"):
            r = c.put(base + "/v2/%s/manifests/%s" % (repo, t), img,
                      headers={"Content-Type": bt.OCI_MANIFEST})
            self.assertStatus(r, 201)
            manifest = r.header("Location")
        r = c.get(base + "/v2/%s/tags/list?n=1" % repo)
        self.assertStatus(r, 200)
        link = r.header("Link")
        return upload, blob, manifest, link

    def test_absolute_urls_on_host_and_prefix(self):
        s = self.start("  host: %s/\n  prefix: /reg/\n" % self.HOST)
        upload, blob, manifest, link = self.push_and_locations(s.client(), "/reg")
        want = self.HOST + "/reg/v2/host/x/"
        for what, url in (("upload", upload), ("blob", blob), ("manifest", manifest)):
            self.assertTrue(url and url.startswith(want), "%s Location %r is not below %s" % (what, url, want))
        self.assertTrue(link and link.startswith("<" + want + "tags/list?"), "Link %r" % link)

    def test_relativeurls_keeps_them_relative(self):
        s = self.start("  host: %s\n  relativeurls: true\n" % self.HOST)
        upload, blob, manifest, link = self.push_and_locations(s.client(), "")
        for what, url in (("upload", upload), ("blob", blob), ("manifest", manifest)):
            self.assertTrue(url and url.startswith("/v2/host/x/"), "%s Location %r" % (what, url))
        self.assertTrue(link and link.startswith("</v2/host/x/tags/list?"), "Link %r" % link)

    def test_host_must_be_an_absolute_url(self):
        for bad in ("registry.example.com", "ftp://x", "https://", "https:///path"):
            cfg = bt.write_file(self.path("bad.yml"), config(self.path("r"), 1, "  host: %s\n" % bad))
            p = bt.run_berth(["serve", cfg])
            self.assertEqual(p.returncode, 1, "%s: %s" % (bad, p.stderr))
            self.assertIn("http.host", p.stderr, bad)


class HeadersTest(bt.OpsTestCase):
    HEADERS = ("  headers:\n"
               "    X-Content-Type-Options: [nosniff]\n"
               "    Strict-Transport-Security: [max-age=31536000]\n"
               "    X-Berth-Test:\n"
               "      - one\n"
               "      - two\n")

    def check(self, r, what):
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff", what + r.describe())
        self.assertEqual(r.header("Strict-Transport-Security"), "max-age=31536000",
                         what + r.describe())
        # two values: two header lines (as Go sends them) or one comma-joined line
        vals = ", ".join(r.headers.get_all("X-Berth-Test") or [])
        self.assertEqual(vals, "one, two", what + r.describe())
        self.assertHeader(r, "Docker-Distribution-API-Version", "registry/2.0")

    def test_configured_headers_on_every_response(self):
        root = self.path("root")
        s = self.spawn(lambda port: (["serve", bt.write_file(
            self.path("config.yml"), config(root, port, self.HEADERS))], {}))
        c = s.client()
        repo = "headers/x"
        data = b"some blob for the headers test"
        self.check(c.get("/v2/"), "GET /v2/")
        self.check(c.head("/v2/"), "HEAD /v2/")
        r = c.post("/v2/%s/blobs/uploads/" % repo)
        self.assertStatus(r, 202)
        self.check(r, "POST upload (202)")
        loc = r.header("Location")
        r = c.get(c.resolve(loc))
        self.check(r, "GET upload status (204)")
        r = c.put(c.resolve(loc, {"digest": bt.digest(data)}), data)
        self.assertStatus(r, 201)
        self.check(r, "PUT upload (201)")
        self.check(c.head("/v2/%s/blobs/%s" % (repo, bt.digest(data))), "HEAD blob")
        self.check(c.get("/v2/%s/blobs/%s" % (repo, bt.digest(data))), "GET blob")
        r = c.get("/v2/%s/blobs/%s" % (repo, bt.digest(data)), headers={"Range": "bytes=0-3"})
        self.check(r, "GET blob range (206)")
        r = c.get("/v2/%s/manifests/nope" % repo, headers=ACCEPT_ALL)
        self.assertStatus(r, 404)
        self.check(r, "GET unknown manifest (404 error)")
        r = c.get("/v2/Bad_Name/tags/list")
        self.check(r, "bad name (%d error)" % r.status)
        self.check(c.get("/v2/_catalog"), "catalog")
        r = c.delete("/v2/%s/blobs/%s" % (repo, bt.digest(data)))
        self.assertStatus(r, 202)
        self.check(r, "DELETE blob (202)")

    def test_headers_from_environment(self):
        """REGISTRY_HTTP_HEADERS='{...}' (a YAML value for the whole map) replaces the file's."""
        root = self.path("envroot")
        s = self.spawn(lambda port: (["serve", bt.write_file(
            self.path("env.yml"), config(root, port, self.HEADERS))],
            {"REGISTRY_HTTP_HEADERS": "{X-From-Env: [yes]}"}))
        r = s.client().get("/v2/")
        self.assertStatus(r, 200)
        self.assertEqual(r.header("X-From-Env"), "yes", r.describe())


if __name__ == "__main__":
    bt.main()
