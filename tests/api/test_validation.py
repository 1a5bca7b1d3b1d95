"""validation.manifests.urls: foreign layers' URLs must match an allow pattern (when any is set)
and no deny pattern; validation.disabled turns the check off. Through a real config file."""

import json
import shutil
import unittest

import berthtest
from berthtest import DOCKER_FOREIGN, OCI_CONFIG, OCI_MANIFEST, descriptor, digest


def start(config_text):
    return berthtest.start_with_config(config_text, "berth-validation-")


CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %(root)s
http:
  addr: 127.0.0.1:%(port)d
validation:
  manifests:
    urls:
      allow:
        - ^https://mirror\\.example\\.com/
      deny:
        - /forbidden/
"""


def foreign_manifest(client, repo, url):
    config = b'{"architecture":"amd64","os":"windows","rootfs":{"type":"layers","diff_ids":[]}}'
    client.push_blob(repo, config)
    layer = {"mediaType": DOCKER_FOREIGN, "digest": digest(b"not-here-" + url.encode()),
             "size": 1234, "urls": [url]}
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": descriptor(config, OCI_CONFIG), "layers": [layer]}).encode()
    return client.put("/v2/%s/manifests/v1" % repo, body=body,
                      headers={"Content-Type": OCI_MANIFEST})


class ValidationTest(unittest.TestCase):
    def run_with(self, config):
        proc, client, tmp = start(config)
        # (cleanups run last first: the server stops, then its directory goes)
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        self.addCleanup(lambda: (proc.terminate(), proc.wait(10)))
        return client

    def test_allow_and_deny(self):
        c = self.run_with(CONFIG)
        r = foreign_manifest(c, "v/ok", "https://mirror.example.com/layer.tar")
        self.assertEqual(r.status, 201, r.describe())
        r = foreign_manifest(c, "v/other", "https://elsewhere.example.org/layer.tar")
        self.assertEqual(r.status, 400, r.describe())
        self.assertIn("MANIFEST_INVALID", r.error_codes())
        r = foreign_manifest(c, "v/denied", "https://mirror.example.com/forbidden/layer.tar")
        self.assertEqual(r.status, 400, r.describe())
        self.assertEqual(c.get("/v2/v/denied/manifests/v1").status, 404)

    def test_disabled(self):
        c = self.run_with(CONFIG + "  disabled: true\n")
        r = foreign_manifest(c, "v/any", "https://elsewhere.example.org/layer.tar")
        self.assertEqual(r.status, 201, r.describe())


if __name__ == "__main__":
    unittest.main(verbosity=2)
