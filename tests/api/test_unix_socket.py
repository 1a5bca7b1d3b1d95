"""http.net: unix — berth serves the API on a unix socket (a Distribution config keeps working)."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import berthtest


def request(path, sock_path, method="GET", body=b""):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock_path)
    s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
               % (method, path, len(body))).encode() + body)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode("latin-1"), payload


class UnixSocketTest(unittest.TestCase):
    def test_serves_on_a_unix_socket(self):
        tmp = tempfile.mkdtemp(prefix="berth-unix-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)  # after the server stops
        sock = os.path.join(tmp, "registry.sock")
        cfg = os.path.join(tmp, "config.yml")
        with open(cfg, "w") as f:
            f.write("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/root\n"
                    "http:\n  net: unix\n  addr: %s\n" % (tmp, sock))
        binary = os.environ.get("BERTH_BIN") or os.path.join(berthtest.SRC, "build", "berth")
        proc = subprocess.Popen([binary, "serve", cfg], stderr=subprocess.PIPE)
        self.addCleanup(lambda: (proc.poll() is None and proc.terminate(), proc.wait(10)))
        # The socket file appears at bind(), before listen(): wait until a request answers.
        deadline = time.time() + 20
        while True:
            try:
                st, head, body = request("/v2/", sock)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        self.assertEqual(st, 200, head)
        self.assertIn("Docker-Distribution-API-Version: registry/2.0", head)
        blob = b"over a unix socket"
        import hashlib
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        st, head, _ = request("/v2/u/s/blobs/uploads/?digest=" + digest, sock, "POST", blob)
        self.assertEqual(st, 201, head)
        st, _, body = request("/v2/u/s/blobs/" + digest, sock)
        self.assertEqual((st, body), (200, blob))
        st, _, body = request("/v2/_catalog", sock)
        self.assertEqual(json.loads(body)["repositories"], ["u/s"])
        proc.terminate()
        self.assertEqual(proc.wait(10), 0)

    def test_a_socket_it_cannot_bind_is_refused_with_the_reason(self):
        """The operating system's reason reaches the log line (issue 16, point 2)."""
        tmp = tempfile.mkdtemp(prefix="berth-unix-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        cfg = os.path.join(tmp, "config.yml")
        with open(cfg, "w") as f:
            f.write("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/root\n"
                    "http:\n  net: unix\n  addr: %s/no/such/dir/registry.sock\n" % (tmp, tmp))
        binary = os.environ.get("BERTH_BIN") or os.path.join(berthtest.SRC, "build", "berth")
        p = subprocess.run([binary, "serve", cfg], stderr=subprocess.PIPE, text=True, timeout=20)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cannot listen on unix socket", p.stderr)
        self.assertIn("no such file or directory", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
