"""`berth serve CONFIG.yml` run the way Distribution is run: a Distribution config.yml (Debian's
shipped one included), REGISTRY_* environment overrides over it, command-line flags over both,
one clear line and exit 1 for a bad file, a warning for an unknown key; plus `berth --version`,
`berth help` and an unknown command.

Every server here is a real berth process on a free loopback port with a temp root."""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import urllib.parse

import berthtest as bt
from berthtest import ACCEPT_ALL, setUpModule  # noqa: F401

FIXTURES = os.path.join(bt.SRC, "tests", "fixtures")
DEBIAN_CONFIG = "/etc/docker/registry/config.yml"


def tearDownModule():
    bt.kill_spawned()
    bt.tearDownModule()


def debian_config():
    """Debian's docker-registry config as installed, else the copy in tests/fixtures/config."""
    if os.path.exists(DEBIAN_CONFIG):
        return DEBIAN_CONFIG
    return os.path.join(FIXTURES, "config", "debian-docker-registry.yml")


class AuthClient(bt.Client):
    """A client that sends one Authorization header with every request."""

    def __init__(self, url, authorization):
        super().__init__(url)
        self.authorization = authorization

    def request(self, method, path, body=None, headers=None, **kw):
        h = dict(headers or {})
        h.setdefault("Authorization", self.authorization)
        return super().request(method, path, body=body, headers=h, **kw)


def bcrypt_htpasswd(user, password):
    """An htpasswd line with a bcrypt hash (the only kind Distribution accepts), or None."""
    if shutil.which("htpasswd"):
        r = subprocess.run(["htpasswd", "-nbB", user, password], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.startswith(user + ":$2"):
            return r.stdout.strip()
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import crypt
        h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
        if h and h.startswith("$2"):
            return "%s:%s" % (user, h)
    except Exception:
        pass
    return None


def repo_dir(root, repo):
    return os.path.join(root, "docker", "registry", "v2", "repositories", repo)


class CommandLineTest(bt.OpsTestCase):
    def test_version(self):
        r = bt.run_berth(["--version"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^berth \d+\.\d+\.\d+\S*\n$")

    def test_help(self):
        for arg in ("help", "--help", "-h"):
            r = bt.run_berth([arg])
            self.assertEqual(r.returncode, 0, "berth %s: %s" % (arg, r.stderr))
            self.assertIn("usage: berth", r.stdout, arg)
            for word in ("serve", "garbage-collect", "--addr", "--root", "--delete"):
                self.assertIn(word, r.stdout, "berth %s does not mention %s" % (arg, word))

    def test_unknown_command(self):
        r = bt.run_berth(["frobnicate"])
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("frobnicate", r.stderr)
        self.assertIn("usage: berth", r.stderr)
        self.assertEqual(r.stdout, "")

    def test_no_command(self):
        r = bt.run_berth([])
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("usage: berth", r.stderr)

    def test_bad_serve_flag(self):
        r = bt.run_berth(["serve", "--addr", "127.0.0.1:1", "--bogus"])
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)  # a usage error
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        # the message must name the option that is wrong, not the first one
        self.assertIn("--bogus", r.stderr)

    def test_bad_flag_value(self):
        for args, name in ((["--log-level", "loud"], "loud"), (["--storage", "floppy"], "floppy"),
                           (["--threads", "many"], "many")):
            r = bt.run_berth(["serve", "--addr", "127.0.0.1:1"] + args)
            self.assertEqual(r.returncode, 2, "%s: %s" % (args, r.stdout + r.stderr))
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertRegex(r.stderr, re.escape(args[0]) + "|" + re.escape(name), args)


class ConfigErrorTest(bt.OpsTestCase):
    """A bad file: exit 1, one line on stderr naming the file, the line and the key."""

    ROOT = "/nonexistent-berth-root"  # never created: berth must not get that far

    def check_error(self, name, text, line, key, env=None):
        path = bt.write_file(self.path(name), text)
        r = bt.run_berth(["serve", path], env=env, timeout=10)
        out = (r.stdout + r.stderr).strip()
        self.assertEqual(r.returncode, 1, "%s: expected exit 1\n%s" % (name, out))
        lines = out.splitlines()
        self.assertEqual(len(lines), 1, "%s: expected exactly one line of output:\n%s" % (name, out))
        where = name + (":%d" % line if line else "")
        self.assertIn(where, lines[0], "%s: the message does not name %s" % (name, where))
        if key:
            self.assertIn(key, lines[0], "%s: the message does not name key %s" % (name, key))
        self.assertFalse(os.path.exists(self.ROOT))
        return lines[0]

    def test_malformed_yaml(self):
        self.check_error("malformed.yml",
                         "version: 0.1\n"
                         "storage:\n"
                         "  filesystem:\n"
                         "    rootdirectory: %s\n"
                         "  delete: enabled: true\n"
                         "http:\n"
                         "  addr: 127.0.0.1:1\n" % self.ROOT, 5, None)

    def test_malformed_yaml_tab(self):
        self.check_error("tab.yml",
                         "version: 0.1\n"
                         "storage:\n"
                         "  filesystem:\n"
                         "    rootdirectory: %s\n"
                         "\tdelete:\n" % self.ROOT, 5, None)

    def test_unknown_storage_driver(self):
        msg = self.check_error("driver.yml",
                               "version: 0.1\n"
                               "http:\n"
                               "  addr: 127.0.0.1:1\n"
                               "storage:\n"
                               "  floppydisk:\n"
                               "    rootdirectory: %s\n" % self.ROOT, 5, "storage")
        self.assertIn("floppydisk", msg)

    def test_two_storage_drivers(self):
        self.check_error("two.yml",
                         "version: 0.1\n"
                         "storage:\n"
                         "  inmemory:\n"
                         "  filesystem:\n"
                         "    rootdirectory: %s\n" % self.ROOT, 4, "storage")

    def test_wrong_type_boolean(self):
        msg = self.check_error("bool.yml",
                               "version: 0.1\n"
                               "storage:\n"
                               "  filesystem:\n"
                               "    rootdirectory: %s\n"
                               "  delete:\n"
                               "    enabled: yes please\n" % self.ROOT, 6, "storage.delete.enabled")
        self.assertIn("yes please", msg)

    def test_wrong_type_integer(self):
        self.check_error("int.yml",
                         "version: 0.1\n"
                         "storage:\n"
                         "  filesystem:\n"
                         "    rootdirectory: %s\n"
                         "catalog:\n"
                         "  maxentries: many\n" % self.ROOT, 6, "catalog.maxentries")

    def test_wrong_type_map_for_list(self):
        self.check_error("map.yml",
                         "version: 0.1\n"
                         "log:\n"
                         "  fields: [a, b]\n"
                         "storage:\n"
                         "  filesystem:\n"
                         "    rootdirectory: %s\n" % self.ROOT, 3, "log.fields")

    def test_wrong_type_string_for_map(self):
        self.check_error("str.yml",
                         "version: 0.1\n"
                         "storage:\n"
                         "  filesystem:\n"
                         "    rootdirectory: %s\n"
                         "http:\n"
                         "  addr: {host: x}\n" % self.ROOT, 6, "http.addr")

    def test_bad_duration(self):
        msg = self.check_error("duration.yml",
                               "version: 0.1\n"
                               "storage:\n"
                               "  filesystem:\n"
                               "    rootdirectory: %s\n"
                               "http:\n"
                               "  addr: 127.0.0.1:1\n"
                               "  draintimeout: 10 parsecs\n" % self.ROOT, 7, "http.draintimeout")
        self.assertIn("10 parsecs", msg)

    def test_bad_duration_nested(self):
        self.check_error("age.yml",
                         "version: 0.1\n"
                         "storage:\n"
                         "  filesystem:\n"
                         "    rootdirectory: %s\n"
                         "  maintenance:\n"
                         "    uploadpurging:\n"
                         "      enabled: true\n"
                         "      age: 1 fortnight\n" % self.ROOT, 8,
                         "storage.maintenance.uploadpurging.age")

    def test_missing_version(self):
        # no line to point at: the file and the key are named
        self.check_error("noversion.yml",
                         "storage:\n"
                         "  filesystem:\n"
                         "    rootdirectory: %s\n" % self.ROOT, None, "version")

    def test_unsupported_version(self):
        self.check_error("version02.yml",
                         "version: 0.2\n"
                         "storage:\n"
                         "  filesystem:\n"
                         "    rootdirectory: %s\n" % self.ROOT, 1, "version")

    def test_missing_file(self):
        path = self.path("no-such-config.yml")
        r = bt.run_berth(["serve", path])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("no-such-config.yml", r.stderr)

    def test_bad_environment_value(self):
        # no file: the variable alone is checked, and named in the message
        r = bt.run_berth(["serve", "--addr", "127.0.0.1:1"],
                         env={"REGISTRY_STORAGE_DELETE_ENABLED": "perhaps"})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("REGISTRY_STORAGE_DELETE_ENABLED", r.stderr)
        self.assertIn("perhaps", r.stderr)
        # and over a good file too
        cfg = bt.write_file(self.path("good.yml"), "version: 0.1\nstorage:\n  inmemory:\n")
        r = bt.run_berth(["serve", cfg], env={"REGISTRY_HTTP_DRAINTIMEOUT": "soon"})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("REGISTRY_HTTP_DRAINTIMEOUT", r.stderr)


class ConfigServeTest(bt.OpsTestCase):
    def test_unknown_keys_warn_and_serve(self):
        root = self.path("unknown", "root")
        cfg = self.path("unknown", "config.yml")

        def make(port):
            bt.write_file(cfg,
                          "version: 0.1\n"                        # 1
                          "frobnicate: 1\n"                       # 2
                          "storage:\n"                            # 3
                          "  filesystem:\n"                       # 4
                          "    rootdirectory: %s\n"               # 5
                          "    colour: blue\n"                    # 6
                          "http:\n"                               # 7
                          "  addr: 127.0.0.1:%d\n"                # 8
                          "  frobnicate:\n"                       # 9
                          "    deeply: true\n" % (root, port))    # 10
            return ["serve", cfg], {}
        s = self.spawn(make)
        img = s.client().push_image("unknown/keys", "v1")
        r = s.client().get("/v2/unknown/keys/manifests/v1", headers=ACCEPT_ALL)
        self.assertStatus(r, 200)
        self.assertEqual(r.body, img["manifest"])
        log = s.log()
        for line, key in ((2, "frobnicate"), (6, "storage.filesystem.colour"), (9, "http.frobnicate")):
            self.assertRegex(log, r"config\.yml:%d:.*warning.*\b%s\b" % (line, re.escape(key)),
                             "no warning naming %s at line %d\n%s" % (key, line, log))
        self.assertNotIn("http.frobnicate.deeply", log, "one warning per unknown key, not per leaf")

    def test_environment_beats_file(self):
        file_root, env_root = self.path("env", "file-root"), self.path("env", "env-root")
        file_port = bt.free_port()
        cfg = bt.write_file(self.path("env", "config.yml"),
                            "version: 0.1\n"
                            "log:\n"
                            "  formatter: text\n"
                            "  fields:\n"
                            "    source: file\n"
                            "    keep: me\n"
                            "storage:\n"
                            "  filesystem:\n"
                            "    rootdirectory: %s\n"
                            "  delete:\n"
                            "    enabled: false\n"
                            "http:\n"
                            "  addr: 127.0.0.1:%d\n" % (file_root, file_port))

        def make(port):
            return ["serve", cfg], {"REGISTRY_HTTP_ADDR": "127.0.0.1:%d" % port,
                                    "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": env_root,
                                    "REGISTRY_STORAGE_DELETE_ENABLED": "true",
                                    "REGISTRY_LOG_FORMATTER": "json",
                                    "REGISTRY_LOG_FIELDS_SOURCE": "env"}
        s = self.spawn(make)
        self.assertFalse(bt.port_open(file_port), "berth listens on the file's http.addr too")
        c = s.client()
        img = c.push_image("env/wins", "v1")
        self.assertTrue(os.path.isdir(repo_dir(env_root, "env/wins")),
                        "the push is not under REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY")
        self.assertFalse(os.path.exists(repo_dir(file_root, "env/wins")))
        r = c.delete("/v2/env/wins/manifests/%s" % img["digest"])
        self.assertStatus(r, 202, "REGISTRY_STORAGE_DELETE_ENABLED=true over the file's false")
        line = s.wait_log(r'"http\.request\.method":"DELETE"')
        self.assertIsNotNone(line, "REGISTRY_LOG_FORMATTER=json: no JSON access line\n" + s.log())
        for l in s.log_lines():
            doc = json.loads(l)
            self.assertEqual(doc.get("source"), "env", l)
            self.assertEqual(doc.get("keep"), "me", "a field the environment did not touch: " + l)

    def test_command_line_beats_environment_and_file(self):
        roots = {k: self.path("cli", k + "-root") for k in ("file", "env", "cli")}
        file_port, env_port = bt.free_port(), bt.free_port()
        cfg = bt.write_file(self.path("cli", "config.yml"),
                            "version: 0.1\n"
                            "log:\n"
                            "  level: info\n"
                            "  accesslog:\n"
                            "    disabled: false\n"
                            "storage:\n"
                            "  filesystem:\n"
                            "    rootdirectory: %s\n"
                            "  delete:\n"
                            "    enabled: false\n"
                            "http:\n"
                            "  addr: 127.0.0.1:%d\n" % (roots["file"], file_port))

        def make(port):
            return (["serve", cfg, "--addr", "127.0.0.1:%d" % port, "--root", roots["cli"],
                     "--delete", "--log-level", "warn"],
                    {"REGISTRY_HTTP_ADDR": "127.0.0.1:%d" % env_port,
                     "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": roots["env"],
                     "REGISTRY_STORAGE_DELETE_ENABLED": "false",
                     "REGISTRY_LOG_LEVEL": "debug"})
        s = self.spawn(make)
        self.assertFalse(bt.port_open(file_port), "berth listens on the file's http.addr too")
        self.assertFalse(bt.port_open(env_port), "berth listens on REGISTRY_HTTP_ADDR too")
        c = s.client()
        img = c.push_image("cli/wins", "v1")
        self.assertTrue(os.path.isdir(repo_dir(roots["cli"], "cli/wins")), "not under --root")
        for k in ("file", "env"):
            self.assertFalse(os.path.exists(repo_dir(roots[k], "cli/wins")), k)
        self.assertStatus(c.delete("/v2/cli/wins/manifests/%s" % img["digest"]), 202, "--delete")
        c.get("/v2/")
        self.assertIsNone(s.wait_log(r"level=(info|debug)|response completed", timeout=0.5),
                          "--log-level warn over REGISTRY_LOG_LEVEL=debug and log.level info\n"
                          + s.log())

    def test_no_access_log_flag_beats_file(self):
        root = self.path("noaccess", "root")

        def make(port):
            cfg = bt.write_file(self.path("noaccess", "config.yml"),
                                "version: 0.1\n"
                                "log:\n  accesslog:\n    disabled: false\n"
                                "storage:\n  filesystem:\n    rootdirectory: %s\n"
                                "http:\n  addr: 127.0.0.1:%d\n" % (root, port))
            return ["serve", cfg, "--no-access-log"], {}
        s = self.spawn(make)
        self.assertStatus(s.client().get("/v2/"), 200)
        self.assertIsNotNone(s.wait_log("listening"), s.log())
        self.assertIsNone(s.wait_log("response completed", timeout=0.5), s.log())

    def test_storage_flag_beats_file(self):
        root = self.path("inmem", "root")

        def make(port):
            cfg = bt.write_file(self.path("inmem", "config.yml"),
                                "version: 0.1\n"
                                "storage:\n  filesystem:\n    rootdirectory: %s\n"
                                "http:\n  addr: 127.0.0.1:%d\n" % (root, port))
            return ["serve", cfg, "--storage", "inmemory"], {}
        s = self.spawn(make)
        s.client().push_image("inmem/x", "v1")
        self.assertFalse(os.path.exists(repo_dir(root, "inmem/x")),
                         "--storage inmemory still wrote to the file's rootdirectory")

    def test_no_config_defaults(self):
        cwd = self.path("nocfg", "cwd", "x")
        cwd = os.path.dirname(cwd)
        s = self.spawn(lambda port: (["serve", "--addr", "127.0.0.1:%d" % port], {}), cwd=cwd)
        c = s.client()
        self.assertStatus(c.get("/v2/"), 200)
        img = c.push_image("defaults/x", "v1")
        self.assertTrue(os.path.isdir(repo_dir(os.path.join(cwd, "data"), "defaults/x")),
                        "without a config the storage is not ./data relative to the cwd: %s"
                        % sorted(os.listdir(cwd)))
        # deletes are off by default, like Distribution
        self.assertError(c.delete("/v2/defaults/x/manifests/%s" % img["digest"]), 405, "UNSUPPORTED")
        self.assertIsNotNone(s.wait_log(r"response completed.*http\.request\.method=\"?PUT"),
                             "the access log is on by default\n" + s.log())

    def test_no_config_environment_applies(self):
        cwd = os.path.dirname(self.path("nocfgenv", "cwd", "x"))
        root = self.path("nocfgenv", "root")
        s = self.spawn(lambda port: (["serve"], {
            "REGISTRY_HTTP_ADDR": "127.0.0.1:%d" % port,
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": root,
            "REGISTRY_STORAGE_DELETE_ENABLED": "true"}), cwd=cwd)
        c = s.client()
        img = c.push_image("envonly/x", "v1")
        self.assertTrue(os.path.isdir(repo_dir(root, "envonly/x")))
        self.assertFalse(os.path.exists(os.path.join(cwd, "data")))
        self.assertStatus(c.delete("/v2/envonly/x/manifests/%s" % img["digest"]), 202)


class EveryKeyTest(bt.OpsTestCase):
    """tests/fixtures/ops/all-keys.yml sets every key berth implements (a TLS listener with
    client certificates, a debug server, a prefix, headers, purging, ...): berth starts with it
    and serves through all of it."""

    def openssl(self, *args):
        r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, cwd=self.tmp)
        if r.returncode != 0:
            self.fail("openssl %s failed: %s" % (" ".join(args), r.stderr))

    def make_certs(self):
        t = self.tmp
        ext = bt.write_file(os.path.join(t, "san.ext"),
                            "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        self.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                     "-subj", "/CN=berth test CA", "-keyout", "ca.key", "-out", "ca.crt")
        self.openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1",
                     "-keyout", "server.key", "-out", "server.csr")
        self.openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                     "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", "server.crt")
        self.openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=berth test client",
                     "-keyout", "client.key", "-out", "client.csr")
        self.openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                     "-CAcreateserial", "-days", "2", "-out", "client.crt")
        return {k: os.path.join(t, k) for k in ("ca.crt", "server.crt", "server.key",
                                                 "client.crt", "client.key")}

    def test_every_supported_key_starts(self):
        if not shutil.which("openssl"):
            self.skipTest("openssl is not installed")
        certs = self.make_certs()
        user = bcrypt_htpasswd("keys", "all-the-keys")
        if not user:
            self.skipTest("neither htpasswd nor crypt can make a bcrypt hash")
        htpasswd = bt.write_file(self.path("htpasswd"), user + "\n")
        basic = "Basic " + base64.b64encode(b"keys:all-the-keys").decode()
        with open(os.path.join(FIXTURES, "ops", "all-keys.yml")) as f:
            template = f.read()
        root = self.path("root")
        ports = {}

        def make(port):
            ports["main"], ports["debug"] = port, bt.free_port()
            text = template
            for k, v in (("@ROOT@", root), ("@PORT@", str(port)), ("@DEBUGPORT@", str(ports["debug"])),
                         ("@CERT@", certs["server.crt"]), ("@KEY@", certs["server.key"]),
                         ("@CLIENTCA@", certs["ca.crt"]), ("@HTPASSWD@", htpasswd)):
                text = text.replace(k, v)
            self.assertIsNone(re.search(r"@[A-Z]+@", text), "a placeholder is left")
            return ["serve", bt.write_file(self.path("all-keys.yml"), text)], {}
        s = self.spawn(make)

        ctx = ssl.create_default_context(cafile=certs["ca.crt"])
        ctx.load_cert_chain(certs["client.crt"], certs["client.key"])

        def req(method, path, body=None, headers=None, auth=basic):
            conn = http.client.HTTPSConnection("127.0.0.1", ports["main"], context=ctx, timeout=10)
            h = dict(headers or {})
            if auth:
                h["Authorization"] = auth
            try:
                conn.request(method, path, body=body, headers=h)
                r = conn.getresponse()
                return r.status, r.headers, r.read()
            finally:
                conn.close()

        status, headers, body = req("GET", "/all/keys/v2/")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("X-Content-Type-Options"), "nosniff")
        self.assertEqual(headers.get("Docker-Distribution-API-Version"), "registry/2.0")
        status, _, _ = req("GET", "/v2/")
        self.assertEqual(status, 404, "http.prefix /all/keys/: /v2/ must not answer")
        status, headers, body = req("GET", "/all/keys/v2/", auth=None)
        self.assertEqual(status, 401, body)
        self.assertRegex(headers.get("WWW-Authenticate", ""), r'^Basic realm="all-keys-realm"')
        # a push through the prefix, over TLS, and a delete (storage.delete.enabled)
        cfgblob = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
        status, h, body = req("POST", "/all/keys/v2/every/key/blobs/uploads/")
        self.assertEqual(status, 202, body)
        loc = h["Location"]
        loc = urllib.parse.urlsplit(loc)
        path = loc.path
        if not path.startswith("/all/keys/"):
            path = "/all/keys" + path  # (test_ops_http checks that Location has the prefix)
        path += "?" + ((loc.query + "&") if loc.query else "") + "digest=" + bt.digest(cfgblob)
        status, _, body = req("PUT", path, cfgblob, {"Content-Type": "application/octet-stream"})
        self.assertEqual(status, 201, body)
        m = bt.canonical({"schemaVersion": 2, "mediaType": bt.OCI_MANIFEST,
                          "config": bt.descriptor(cfgblob, bt.OCI_CONFIG), "layers": []})
        status, _, body = req("PUT", "/all/keys/v2/every/key/manifests/v1", m,
                              {"Content-Type": bt.OCI_MANIFEST})
        self.assertEqual(status, 201, body)
        status, _, body = req("GET", "/all/keys/v2/every/key/manifests/v1", None, ACCEPT_ALL)
        self.assertEqual((status, body), (200, m))
        self.assertTrue(os.path.isdir(repo_dir(root, "every/key")))
        status, _, body = req("DELETE", "/all/keys/v2/every/key/manifests/%s" % bt.digest(m))
        self.assertEqual(status, 202, body)
        # the debug server: health and metrics at the configured path
        dbg = bt.Client("http://127.0.0.1:%d" % ports["debug"])
        r = dbg.get("/debug/health")
        self.assertStatus(r, 200)
        self.assertEqual(r.json(), {})
        r = dbg.get("/custom/metrics")
        self.assertStatus(r, 200)
        self.assertIn("berth_http_requests_total", r.body.decode())
        # every key is known (no "unknown key" warning), every line is JSON with the
        # configured fields, and nothing is logged as an error
        lines = s.log_lines()
        self.assertTrue(lines, "nothing logged")
        for l in lines:
            try:
                doc = json.loads(l)
            except ValueError:
                self.fail("log line is not JSON: %s\n%s" % (l, s.log()))
            self.assertEqual((doc.get("service"), doc.get("environment")), ("registry", "test"), l)
            self.assertNotEqual(doc.get("level"), "error", l)
        self.assertEqual(s.stop(signal.SIGTERM, timeout=10), 0, s.describe())


class DebianConfigTest(bt.OpsTestCase):
    """Debian's docker-registry package ships /etc/docker/registry/config.yml: filesystem
    storage, delete enabled, a log field, a header, htpasswd auth and a storage health check.
    berth runs it unchanged, with only the variables an operator would set."""

    def env(self, port, root, **extra):
        e = {"REGISTRY_HTTP_ADDR": "127.0.0.1:%d" % port,
             "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": root}
        e.update(extra)
        return e

    def test_unchanged_requires_basic_auth(self):
        """With only addr and root overridden, the htpasswd section applies: like
        docker-registry, berth answers 401 with the Basic challenge of realm basic-realm."""
        root = self.path("unchanged", "root")
        s = self.spawn(lambda port: (["serve", debian_config()], self.env(port, root)))
        r = s.client().get("/v2/")
        self.assertStatus(r, 401)
        self.assertRegex(r.header("WWW-Authenticate", ""), r'^Basic realm="basic-realm"')
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff", r.describe())
        r = s.client().post("/v2/debian/x/blobs/uploads/")
        self.assertStatus(r, 401)

    def test_with_htpasswd_file_serves_pushes(self):
        line = bcrypt_htpasswd("deb", "s3cret")
        if not line:
            self.skipTest("neither htpasswd nor crypt can make a bcrypt hash")
        htpasswd = bt.write_file(self.path("htpasswd", "htpasswd"), line + "\n")
        root = self.path("htpasswd", "root")
        s = self.spawn(lambda port: (["serve", debian_config()], self.env(
            port, root, REGISTRY_AUTH_HTPASSWD_PATH=htpasswd)))
        good = AuthClient(s.url, "Basic " + base64.b64encode(b"deb:s3cret").decode())
        bad = AuthClient(s.url, "Basic " + base64.b64encode(b"deb:wrong").decode())
        self.assertStatus(s.client().get("/v2/"), 401)
        self.assertStatus(bad.get("/v2/"), 401)
        self.assertStatus(good.get("/v2/"), 200)
        img = good.push_image("debian/htpasswd", "v1")
        r = good.get("/v2/debian/htpasswd/manifests/v1", headers=ACCEPT_ALL)
        self.assertStatus(r, 200)
        self.assertEqual(r.body, img["manifest"])
        self.assertStatus(s.client().get("/v2/debian/htpasswd/manifests/v1", headers=ACCEPT_ALL), 401)
        self.assertTrue(os.path.isdir(repo_dir(root, "debian/htpasswd")))

    def test_auth_none_serves_pushes(self):
        """REGISTRY_AUTH=none (as docker-registry reads it) turns the htpasswd section off: pushes,
        pulls and deletes (delete.enabled: true in the file) work, with the file's header and
        log field."""
        root = self.path("none", "root")
        s = self.spawn(lambda port: (["serve", debian_config()],
                                     self.env(port, root, REGISTRY_AUTH="none")))
        c = s.client()
        r = c.get("/v2/")
        self.assertStatus(r, 200)
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff", r.describe())
        img = c.push_image("debian/none", "v1", layers=2)
        r = c.get("/v2/debian/none/manifests/v1", headers=ACCEPT_ALL)
        self.assertStatus(r, 200)
        self.assertEqual(r.body, img["manifest"])
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff", r.describe())
        self.assertTrue(os.path.isdir(repo_dir(root, "debian/none")))
        self.assertStatus(c.delete("/v2/debian/none/manifests/%s" % img["digest"]), 202)
        line = s.wait_log(r"response completed.*DELETE")
        self.assertIsNotNone(line, s.log())
        self.assertIn('service="registry"', line, "log.fields service: registry")


if __name__ == "__main__":
    bt.main()
