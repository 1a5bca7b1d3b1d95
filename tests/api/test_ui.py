"""The web interface's server side (ui.enabled, src/ui/): the ui key group, the /ui/ routes,
the built-in files with their Content-Type, ETag and Content-Security-Policy, http.prefix, and
authentication on /ui/api/. The pages themselves run in a browser: tests/e2e/test_ui.sh.

Every server here is a real berth process on a free loopback port with a temp root."""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
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

    def test_enabled_from_environment(self):
        root, cfg = self.path("env", "root"), self.path("env", "config.yml")

        def make(port):
            bt.write_file(cfg, "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\n"
                               "http:\n  addr: 127.0.0.1:%d\n" % (root, port))
            return ["serve", cfg], {"REGISTRY_UI_ENABLED": "true"}
        s = self.spawn(make)
        self.assertStatus(s.client().get("/ui/"), 200)

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



class UiTokenTest(bt.OpsTestCase):
    """/ui/api/token: berth asks auth.token.realm for the page (tests/fixtures/auth/tokenserver.py)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        key, cert = os.path.join(cls.tmp, "rsa.key"), os.path.join(cls.tmp, "rsa.crt")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                        "-out", key], check=True, capture_output=True)
        subprocess.run(["openssl", "req", "-x509", "-new", "-key", key, "-subj", "/CN=ui test", "-days", "2",
                        "-out", cert], check=True, capture_output=True)
        users = bt.write_file(os.path.join(cls.tmp, "users.json"), json.dumps(
            {"bob": {"password": "pw", "access": {"tok/app": ["pull"]}}}))
        port_file = os.path.join(cls.tmp, "token.port")
        cls.token_log = open(os.path.join(cls.tmp, "tokenserver.log"), "wb")
        cls.token_server = subprocess.Popen(
            [sys.executable, os.path.join(bt.SRC, "tests/fixtures/auth/tokenserver.py"), "serve", "--key", key,
             "--cert", cert, "--alg", "RS256", "--issuer", "ui-issuer", "--users", users, "--port-file",
             port_file], stdout=cls.token_log, stderr=subprocess.STDOUT)
        for _ in range(200):
            if os.path.exists(port_file) and os.path.getsize(port_file):
                break
            time.sleep(0.05)
        with open(port_file) as f:
            cls.realm = "http://127.0.0.1:%s/token" % f.read().strip()
        cls.cert = cert

    @classmethod
    def tearDownClass(cls):
        cls.token_server.terminate()
        cls.token_server.wait()
        cls.token_log.close()
        super().tearDownClass()

    def serve(self, name, realm, threads=None):
        root = self.path(name, "root")
        cfg = self.path(name, "config.yml")

        def make(port):
            bt.write_file(cfg, "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\n"
                               "http:\n  addr: 127.0.0.1:%d\nauth:\n  token:\n    realm: %s\n"
                               "    service: berth-ui\n    issuer: ui-issuer\n    rootcertbundle: %s\n"
                               "ui:\n  enabled: true\n" % (root, port, realm, self.cert))
            return ["serve", cfg] + (["--threads", str(threads)] if threads else []), {}
        return self.spawn(make)

    def test_forwarded(self):
        s = self.serve("fwd", self.realm)
        good = AuthClient(s.url, "Basic " + base64.b64encode(b"bob:pw").decode())
        r = good.get("/ui/api/token?scope=repository:tok/app:pull")
        self.assertStatus(r, 200)
        self.assertEqual(r.header("Cache-Control"), "no-store")
        token = r.json()["token"]
        self.assertEqual(r.json()["expires_in"], 300)
        # The token is the token server's: berth accepts it for what it grants.
        bearer = AuthClient(s.url, "Bearer " + token)
        self.assertStatus(bearer.get("/v2/tok/app/tags/list"), 404)  # allowed; the repository is empty
        self.assertStatus(bearer.get("/v2/tok/other/tags/list"), 401)
        # Anonymous: a token granting nothing (the token server decides).
        self.assertStatus(s.client().get("/ui/api/token?scope=repository:tok/app:pull"), 200)
        bad = AuthClient(s.url, "Basic " + base64.b64encode(b"bob:wrong").decode())
        r = bad.get("/ui/api/token")
        self.assertStatus(r, 401)
        self.assertIn("UNAUTHORIZED", r.error_codes())
        self.assertIsNone(r.header("WWW-Authenticate"), "no challenge: the browser must not prompt")
        r = good.get("/ui/api/token?scope=repository:tok/app:pull%20x")
        self.assertStatus(r, 400)

    def test_not_with_htpasswd(self):
        pw = bt.write_file(self.path("ht", "htpasswd"), "")
        root, cfg = self.path("ht", "root"), self.path("ht", "config.yml")

        def make(port):
            bt.write_file(cfg, "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\n"
                               "http:\n  addr: 127.0.0.1:%d\nauth:\n  htpasswd:\n    realm: r\n    path: %s\n"
                               "ui:\n  enabled: true\n" % (root, port, pw))
            return ["serve", cfg], {}
        s = self.spawn(make)
        r = s.client().get("/ui/api/token")
        self.assertStatus(r, 404)
        self.assertIn("UNSUPPORTED", r.error_codes())

    def test_unreachable(self):
        s = self.serve("down", "http://127.0.0.1:%d/token" % bt.free_port())
        r = s.client().get("/ui/api/token")
        self.assertStatus(r, 503)
        self.assertIn("UNAVAILABLE", r.error_codes())
        self.assertIn("token server unreachable", s.log())

    def test_slow_token_server_blocks_no_polling_thread(self):
        """A token server that never answers: with one polling thread, berth still answers
        everything else at once, gives up after 10 s, and a SIGTERM meanwhile waits for the
        call rather than crashing."""
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        self.addCleanup(silent.close)
        s = self.serve("slow", "http://127.0.0.1:%d/token" % silent.getsockname()[1], threads=1)
        results = {}

        def ask(key):
            t0 = time.monotonic()
            results[key] = (s.client().get("/ui/api/token", timeout=30), time.monotonic() - t0)
        waiting = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
        for t in waiting:
            t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        self.assertStatus(s.client().get("/ui/", timeout=5), 200)
        self.assertStatus(s.client().get("/v2/", timeout=5), 401)
        self.assertLess(time.monotonic() - t0, 1.0, "the polling thread is free while the token calls wait")
        for t in waiting:
            t.join()
        for r, took in results.values():
            self.assertStatus(r, 503)
            self.assertGreater(took, 9)
            self.assertLess(took, 15)
        # SIGTERM while a call waits: berth stops once the call gives up, with status 0.
        late = threading.Thread(target=ask, args=("late",))
        late.start()
        time.sleep(0.5)
        s.proc.send_signal(signal.SIGTERM)
        self.assertEqual(s.proc.wait(timeout=20), 0, s.log())
        late.join()


if __name__ == "__main__":
    bt.main()
