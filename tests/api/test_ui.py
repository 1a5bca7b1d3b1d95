"""The web interface's server side (ui.enabled, src/ui/): the ui key group, the /ui/ routes,
the built-in files with their Content-Type, ETag and Content-Security-Policy, http.prefix, and
authentication on /ui/api/. The pages themselves run in a browser: tests/e2e/test_ui.sh.

Every server here is a real berth process on a free loopback port with a temp root."""

import base64
import os
import time

import berthtest as bt
from berthtest import setUpModule  # noqa: F401
from test_ops_config import AuthClient, bcrypt_htpasswd


def tearDownModule():
    bt.kill_spawned()
    bt.tearDownModule()


class UiTest(bt.OpsTestCase):
    def serve(self, name, ui="ui:\n  enabled: true\n", extra=""):
        root = self.path(name, "root")
        cfg = self.path(name, "config.yml")

        def make(port):
            bt.write_file(cfg, "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\n"
                               "  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%d\n%s%s"
                          % (root, port, extra, ui))
            return ["serve", cfg], {}
        return self.spawn(make)

    def test_off_by_default(self):
        s = self.serve("off", ui="")
        for path in ("/ui/", "/ui", "/ui/assets/app.js", "/ui/api/info"):
            self.assertStatus(s.client().get(path), 404)

    def test_enabled_false(self):
        s = self.serve("false", ui="ui:\n  enabled: false\n")
        self.assertStatus(s.client().get("/ui/"), 404)

    def test_unknown_ui_key_refused(self):
        cfg = bt.write_file(self.path("refuse", "config.yml"),
                            "version: 0.1\nstorage:\n  inmemory: {}\nui:\n  enabled: true\n  theme: dark\n")
        r = bt.run_berth(["serve", cfg])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"config\.yml:6: ui\.theme: refused")
        cfg2 = bt.write_file(self.path("refuse", "env.yml"), "version: 0.1\nstorage:\n  inmemory: {}\n")
        r = bt.run_berth(["serve", cfg2], env={"REGISTRY_UI_THEME": "dark"})
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("ui.theme: refused", r.stderr)

    def test_ui_enabled_not_a_boolean(self):
        cfg = bt.write_file(self.path("bool", "config.yml"),
                            "version: 0.1\nstorage:\n  inmemory: {}\nui:\n  enabled: maybe\n")
        r = bt.run_berth(["serve", cfg])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("ui.enabled", r.stderr)

    def test_pages_and_files(self):
        s = self.serve("on")
        c = s.client()
        r = c.get("/ui")
        self.assertStatus(r, 301)
        self.assertEqual(r.header("Location"), "/ui/")
        for path in ("/ui/", "/ui/repo/library/alpine", "/ui/repo/a/b/-/manifest/sha256:" + "0" * 64):
            r = c.get(path)
            self.assertStatus(r, 200)
            self.assertEqual(r.header("Content-Type"), "text/html; charset=utf-8")
            self.assertIn(b'<script type="module" src="/ui/assets/app.js">', r.body)
            self.assertNotIn(b"<script>", r.body, "no inline script")
        types = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8",
                 "icon.svg": "image/svg+xml"}
        for name, ctype in types.items():
            r = c.get("/ui/assets/" + name)
            self.assertStatus(r, 200)
            self.assertEqual(r.header("Content-Type"), ctype)
            with open("%s/src/ui/assets/%s" % (bt.SRC, name), "rb") as f:
                self.assertEqual(r.body, f.read(), name + " is served byte for byte")
        self.assertStatus(c.get("/ui/assets/nothing.js"), 404)
        self.assertStatus(c.get("/ui/assets/index.html"), 404)
        self.assertStatus(c.get("/ui/api/nothing"), 404)
        r = c.head("/ui/assets/app.js")
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b"")

    def test_headers_and_revalidation(self):
        s = self.serve("headers")
        c = s.client()
        for path in ("/ui/", "/ui/assets/app.js", "/ui/assets/style.css"):
            r = c.get(path)
            self.assertStatus(r, 200)
            csp = r.header("Content-Security-Policy")
            self.assertIsNotNone(csp, path)
            directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
            self.assertEqual(directives["default-src"], "'none'")
            self.assertEqual(directives["script-src"], "'self'", "no inline script, no other origin")
            self.assertEqual(directives["connect-src"], "'self'")
            self.assertEqual(directives["frame-ancestors"], "'none'")
            self.assertNotIn("unsafe", csp)
            self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
            self.assertEqual(r.header("Cache-Control"), "no-cache")
            etag = r.header("ETag")
            self.assertRegex(etag, r'^"[0-9a-f]{32}"$')
            r2 = c.get(path, headers={"If-None-Match": etag})
            self.assertStatus(r2, 304)
            self.assertEqual(r2.body, b"")
            self.assertEqual(r2.header("ETag"), etag)
            r3 = c.get(path, headers={"If-None-Match": '"other", ' + etag})
            self.assertStatus(r3, 304)
            self.assertStatus(c.get(path, headers={"If-None-Match": '"other"'}), 200)

    def test_only_get(self):
        s = self.serve("methods")
        for method in ("POST", "PUT", "DELETE"):
            r = s.client().request(method, "/ui/", body=b"")
            self.assertStatus(r, 405)
            self.assertIn("UNSUPPORTED", r.error_codes())

    def test_prefix(self):
        s = self.serve("prefix", extra="  prefix: /registry/\n")
        c = s.client()
        r = c.get("/registry/ui/repo/x")
        self.assertStatus(r, 200)
        self.assertIn(b'src="/registry/ui/assets/app.js"', r.body)
        self.assertIn(b'<meta name="berth-base" content="/registry">', r.body)
        self.assertStatus(c.get("/registry/ui/assets/style.css"), 200)
        r = c.get("/registry/ui")
        self.assertStatus(r, 301)
        self.assertEqual(r.header("Location"), "/registry/ui/")
        self.assertStatus(c.get("/ui/"), 404)

    def test_info_and_pushed_without_auth(self):
        s = self.serve("noauth")
        c = s.client()
        r = c.get("/ui/api/info")
        self.assertStatus(r, 200)
        self.assertEqual(r.json(), {"delete_enabled": True, "readonly": False})
        self.assertEqual(r.header("Cache-Control"), "no-store")
        c.push_image("ui/pushed", "v1")
        r = c.get("/ui/api/pushed?repo=ui/pushed&tag=v1")
        self.assertStatus(r, 200)
        pushed = r.json()["pushed"]
        self.assertRegex(pushed, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        link = os.path.join(self.path("noauth", "root"), "docker/registry/v2/repositories/ui/pushed",
                            "_manifests/tags/v1/current/link")
        self.assertEqual(pushed, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.stat(link).st_mtime)),
                         "the pushed date is the tag link's mtime")
        self.assertIn("MANIFEST_UNKNOWN", c.get("/ui/api/pushed?repo=ui/pushed&tag=nope").error_codes())
        self.assertStatus(c.get("/ui/api/pushed?repo=ui/pushed&tag=nope"), 404)
        self.assertIn("NAME_INVALID", c.get("/ui/api/pushed?repo=UPPER&tag=v1").error_codes())
        self.assertIn("TAG_INVALID", c.get("/ui/api/pushed?repo=ui/pushed&tag=..").error_codes())
        self.assertIn("NAME_INVALID", c.get("/ui/api/pushed?tag=v1").error_codes())

    def test_auth_on_ui_api(self):
        line = bcrypt_htpasswd("alice", "wonder")
        if not line:
            self.skipTest("no bcrypt htpasswd generator")
        pw = bt.write_file(self.path("auth", "htpasswd"), line + "\n")
        s = self.serve("auth", extra="auth:\n  htpasswd:\n    realm: ui\n    path: %s\n" % pw)
        anon = s.client()
        good = AuthClient(s.url, "Basic " + base64.b64encode(b"alice:wonder").decode())
        bad = AuthClient(s.url, "Basic " + base64.b64encode(b"alice:nope").decode())
        # The page and its files hold no data: they load before the login form.
        self.assertStatus(anon.get("/ui/"), 200)
        self.assertStatus(anon.get("/ui/assets/app.js"), 200)
        good.push_image("ui/secret", "v1")
        for path in ("/ui/api/info", "/ui/api/pushed?repo=ui/secret&tag=v1"):
            for client in (anon, bad):
                r = client.get(path)
                self.assertStatus(r, 401)
                self.assertIn("UNAUTHORIZED", r.error_codes())
                self.assertRegex(r.header("WWW-Authenticate") or "", r'^Basic realm="ui"')
            self.assertStatus(good.get(path), 200)


if __name__ == "__main__":
    bt.main()
