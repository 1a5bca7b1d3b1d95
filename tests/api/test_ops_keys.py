#!/usr/bin/env python3
"""Configuration keys of Distribution 3's reference that change what clients get, each run in a
berth of its own: catalog.maxentries, tags.maxtags, and the sections berth refuses at start-up
with one line naming the key (never starting in a weaker mode than the file asks for) or, for
obsolete 2.x sections, warns about once."""
import json
import os

import berthtest as bt

BASE = "version: 0.1\nstorage:\n  inmemory:\nhttp:\n  addr: 127.0.0.1:%d\n"


class KeysTest(bt.OpsTestCase):

    def start(self, extra):
        def make(port):
            return ["serve", bt.write_file(self.path("config-%d.yml" % port), BASE % port + extra)], {}
        return self.spawn(make)

    def test_catalog_maxentries(self):
        s = self.start("catalog:\n  maxentries: 3\n")
        c = s.client()
        for i in range(5):
            c.push_image("cat/r%d" % i, "v1")
        r = c.get("/v2/_catalog")
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["repositories"], ["cat/r0", "cat/r1", "cat/r2"])
        self.assertIn("last=cat/r2", r.headers.get("Link", ""))
        r = c.get("/v2/_catalog?n=2")
        self.assertEqual(r.json()["repositories"], ["cat/r0", "cat/r1"])
        r = c.get("/v2/_catalog?n=3&last=cat/r2")
        self.assertEqual(r.json()["repositories"], ["cat/r3", "cat/r4"])

    def test_tags_maxtags(self):
        s = self.start("tags:\n  maxtags: 2\n")
        c = s.client()
        img = c.push_image("tags/r", "t0")
        for t in ("t1", "t2", "t3"):
            self.assertStatus(c.put_manifest("tags/r", t, img["manifest"]), 201)
        # without n, the whole list (as in Distribution); a larger n is lowered to maxtags
        self.assertEqual(c.get("/v2/tags/r/tags/list").json()["tags"], ["t0", "t1", "t2", "t3"])
        r = c.get("/v2/tags/r/tags/list?n=10")
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["tags"], ["t0", "t1"])
        self.assertIn("last=t1", r.headers.get("Link", ""))
        self.assertEqual(c.get("/v2/tags/r/tags/list?n=1").json()["tags"], ["t0"])

    def push_index(self, c, repo, tag, children):
        """An OCI index over children: (manifest bytes, os, architecture) each."""
        idx = {"schemaVersion": 2, "mediaType": bt.OCI_INDEX, "manifests": [
            dict(bt.descriptor(body, bt.OCI_MANIFEST), platform={"os": os_, "architecture": arch})
            for body, os_, arch in children]}
        return c.put_manifest(repo, tag, bt.canonical(idx), bt.OCI_INDEX)

    def index_answers(self, extra):
        """Statuses of index pushes: complete; missing linux/arm64 only; missing linux/amd64."""
        s = self.start(extra)
        c = s.client()
        present = c.push_image("idx/r", "amd64")["manifest"]
        absent = bt.canonical({"schemaVersion": 2, "mediaType": bt.OCI_MANIFEST, "absent": True,
                               "config": bt.descriptor(b"{}", bt.OCI_CONFIG), "layers": []})
        absent2 = bt.canonical({"schemaVersion": 2, "mediaType": bt.OCI_MANIFEST, "absent": 2,
                                "config": bt.descriptor(b"{}", bt.OCI_CONFIG), "layers": []})
        return (self.push_index(c, "idx/r", "full", [(present, "linux", "amd64")]).status,
                self.push_index(c, "idx/r", "no-arm", [(present, "linux", "amd64"),
                                                       (absent, "linux", "arm64")]).status,
                self.push_index(c, "idx/r", "no-amd", [(absent2, "linux", "amd64")]).status)

    def test_validation_manifests_indexes(self):
        self.assertEqual(self.index_answers(""), (201, 400, 400))
        self.assertEqual(self.index_answers("validation:\n  manifests:\n    indexes:\n"
                                            "      platforms: all\n"), (201, 400, 400))
        self.assertEqual(self.index_answers("validation:\n  manifests:\n    indexes:\n"
                                            "      platforms: none\n"), (201, 201, 201))
        self.assertEqual(self.index_answers("validation:\n  manifests:\n    indexes:\n"
                                            "      platforms: List\n      platformlist:\n"
                                            "        - os: linux\n          architecture: amd64\n"),
                         (201, 201, 400))
        # Distribution 3 checks no child with validation disabled
        self.assertEqual(self.index_answers("validation:\n  disabled: true\n"), (201, 201, 201))
        self.refused("validation:\n  manifests:\n    indexes:\n      platformlist:\n"
                     "        - {os: linux, architecture: amd64}\n",
                     "validation.manifests.indexes.platformlist: refused: used only with platforms: list")

    def test_log_reportcaller(self):
        s = self.start("log:\n  formatter: json\n  reportcaller: true\n")
        self.assertStatus(s.client().get("/v2/"), 200)
        line = s.wait_log("listening on")
        self.assertTrue(line, s.describe())
        doc = json.loads(line)
        self.assertEqual(doc.get("func"), "serve", line)
        self.assertRegex(doc.get("file", ""), r"^src/main\.c:[0-9]+$", line)
        # off by default
        s = self.start("log:\n  formatter: json\n")
        doc = json.loads(s.wait_log("listening on"))
        self.assertNotIn("file", doc)
        self.assertNotIn("func", doc)

    def refused(self, extra, needle):
        port = bt.free_port()
        r = bt.run_berth(["serve", bt.write_file(self.path("refused.yml"), BASE % port + extra)])
        out = (r.stdout + r.stderr).strip()
        self.assertEqual(r.returncode, 1, out)
        self.assertEqual(len(out.splitlines()), 1, "not one line: " + out)
        self.assertIn(needle, out)
        return out

    def test_unimplemented_sections_are_refused_by_name(self):
        out = self.refused("  h2c:\n    enabled: true\n", "http.h2c.enabled: refused:")
        self.assertIn("HTTP/1.1", out)
        self.refused("log:\n  hooks:\n    - type: mail\n      levels: [panic]\n", "log.hooks: refused:")
        self.refused("middleware:\n  registry:\n    - name: x\n", "middleware.registry: refused:")
        self.refused("middleware:\n  storage:\n    - name: rewrite\n      options: {host: x}\n",
                     "middleware.storage[0].name: refused:")
        self.refused("proxy:\n  remoteurl: http://127.0.0.1:1\n  exec:\n    lifetime: 1h\n",
                     "proxy.exec.command: required with proxy.exec.lifetime")
        out = self.refused("  tls:\n    letsencrypt:\n      cachefile: /tmp/le\n      hosts: [x.example]\n",
                           "http.tls.letsencrypt: refused:")
        self.assertIn("certbot", out)
        # the same keys asking for nothing start (an empty or disabled section)
        s = self.start("  h2c:\n    enabled: false\nlog:\n  hooks:\n    - type: mail\n      disabled: true\n"
                       "middleware:\n  registry: []\nnotifications:\n  endpoints:\n"
                       "    - name: off\n      disabled: true\n      url: http://127.0.0.1:1/\n")
        self.assertStatus(s.client().get("/v2/"), 200)

    def test_obsolete_sections_warn_once(self):
        s = self.start("reporting:\n  bugsnag:\n    apikey: x\n  newrelic:\n    name: y\n"
                       "compatibility:\n  schema1:\n    enabled: true\npolicy:\n  repository:\n    classes: []\n")
        self.assertStatus(s.client().get("/v2/"), 200)
        log = s.log()
        for section in ("reporting", "compatibility", "policy"):
            lines = [l for l in log.splitlines() if "warning: %s: obsolete" % section in l]
            self.assertEqual(len(lines), 1, "%s: %s" % (section, log))


if __name__ == "__main__":
    bt.main()
