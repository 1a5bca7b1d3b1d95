"""Uploads on S3 (run by tests/e2e/test_s3_suites.sh with BERTH_STORAGE=s3; skipped on other
storage). Chunked: the bytes of an upload stay the parts of one multipart upload across PATCHes,
as Distribution's s3 driver keeps them, whichever instance takes the next PATCH and across
restarts; the hash state is saved in Distribution's format; the commit completes and copies;
a cancelled upload aborts its multipart upload. Whole (a monolithic POST, or a PUT with every
byte): a multipart upload on the blob's own key (one PUT for a body of one part), completed only
once the digest matches, so no copy, and nothing at that key before (a wrong digest, a crash).
What is in the bucket is read with curl; the S3 requests berth makes are counted by
tests/fixtures/s3/faultproxy.py."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse

import berthtest
from berthtest import digest, setUpModule, tearDownModule  # noqa: F401

FIXTURES = os.path.join(berthtest.SRC, "tests", "fixtures", "s3")

MIB = 1 << 20
OCTETS = {"Content-Type": "application/octet-stream"}


def s3_get(path, query=""):
    """GET of path in the bucket ("" for the bucket itself) with a query string, signed as any
    S3 client signs it: the answer's bytes."""
    e = os.environ
    out = subprocess.run(
        ["curl", "-s", "--aws-sigv4", "aws:amz:%s:s3" % e["S3_REGION"],
         "--user", "%s:%s" % (e["S3_ACCESS_KEY"], e["S3_SECRET_KEY"]),
         "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
         "%s/%s/%s%s" % (e["S3_ENDPOINT"], e["S3_BUCKET"], path, "?" + query if query else "")],
        check=True, capture_output=True)
    return out.stdout


def keys_below(prefix):
    """{key: size} of the objects whose key starts with prefix."""
    body = s3_get("", "list-type=2&prefix=" + urllib.parse.quote(prefix, safe="")).decode()
    return {k: int(s) for k, s in re.findall(r"<Key>([^<]*)</Key>.*?<Size>(\d+)</Size>", body)}


def open_uploads(prefix):
    """[(key, upload id)] of the multipart uploads open below prefix."""
    body = s3_get("", "prefix=%s&uploads=" % urllib.parse.quote(prefix, safe="")).decode()
    return re.findall(r"<Upload>.*?<Key>([^<]*)</Key>.*?<UploadId>([^<]*)</UploadId>", body, re.S)


def part_sizes(key, upload_id):
    body = s3_get(key, "uploadId=" + urllib.parse.quote(upload_id, safe="")).decode()
    return [int(s) for s in re.findall(r"<Part>.*?<Size>(\d+)</Size>", body, re.S)]


def pattern(n, seed=7):
    """n reproducible bytes with no short period."""
    out = bytearray()
    x = seed
    while len(out) < n:
        x = (x * 6364136223846793005 + 1442695040888963407) & ((1 << 64) - 1)
        out += x.to_bytes(8, "little")
    return bytes(out[:n])


def purging_config(s3_root):
    """A config for start_with_config on the bucket below s3_root that purges uploads older
    than a second, every second."""
    return berthtest.s3_config(s3_root, redirect=True, storage="  maintenance:\n    uploadpurging:\n"
                               "      enabled: true\n      age: 1s\n      interval: 1s\n")


def kill_mid_body(test, method, path, data, sent, key):
    """Sends `method path` announcing all of data but only data[:sent], waits until the
    multipart upload on key holds two parts, then kills the test's berth (SIGKILL). Returns the
    part sizes seen."""
    sock = socket.create_connection((test.c.host, test.c.port), timeout=20)
    try:
        sock.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream"
                      "\r\nContent-Length: %d\r\n\r\n" % (method, path, len(data))).encode())
        sock.sendall(data[:sent])
        deadline = time.time() + 20
        parts = []
        while time.time() < deadline:
            ups = [u for u in open_uploads(key) if u[0] == key]
            parts = part_sizes(key, ups[0][1]) if ups else []
            if len(parts) >= 2:
                break
            time.sleep(0.05)
        test.srv.proc.send_signal(signal.SIGKILL)
        test.srv.proc.wait(10)
        test.srv.proc = None  # killed on purpose: restart() must not report it
    finally:
        sock.close()
    return parts


def counted(test, chunksize=None, proxy_args=()):
    """A second berth on test's rootdirectory whose S3 requests pass through faultproxy.py
    (no faults unless proxy_args asks for them), which logs them, in parts of chunksize if
    given: (client, function reading the requests so far)."""
    tmp = tempfile.mkdtemp(prefix="berth-s3count-")
    test.addCleanup(shutil.rmtree, tmp, True)
    port_file, log = os.path.join(tmp, "port"), os.path.join(tmp, "requests")
    proxy = subprocess.Popen(
        ["python3", os.path.join(FIXTURES, "faultproxy.py"), "--upstream", os.environ["S3_ENDPOINT"],
         "--every", "0", "--port-file", port_file, "--log-file", log, "--max-seconds", "300"]
        + list(proxy_args))
    test.addCleanup(proxy.wait, 10)
    test.addCleanup(proxy.kill)
    deadline = time.time() + 20
    while not os.path.exists(port_file) and time.time() < deadline:
        time.sleep(0.02)
    with open(port_file) as f:
        endpoint = "http://127.0.0.1:%s" % f.read().strip()
    cfg = berthtest.s3_config(test.srv.s3_root, endpoint=endpoint, chunksize=chunksize or berthtest.S3_CHUNKSIZE,
                              delete=True, redirect=True)
    proc, c, cfg_tmp = berthtest.start_with_config(cfg, "berth-s3count-srv-")
    test.addCleanup(shutil.rmtree, cfg_tmp, True)

    def stop():  # its exit status tells a leak in a sanitizer build (LeakSanitizer's 23)
        proc.terminate()
        rc = proc.wait(10)
        if rc not in (0, -signal.SIGTERM):
            with open(os.path.join(cfg_tmp, "log"), errors="replace") as f:
                test.fail("berth (through faultproxy) exited with %s:\n%s" % (rc, f.read()[-4000:]))
    test.addCleanup(stop)

    def requests():
        if not os.path.exists(log):
            return []
        with open(log) as f:
            return f.read().splitlines()
    return c, requests


def patch_held(c, loc, body, start, held):
    """A PATCH through client c of body at offset start, announced whole (Content-Length) but
    stopped after `held` bytes: its socket."""
    sock = socket.create_connection((c.host, c.port), timeout=60)
    sock.sendall(("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream"
                  "\r\nContent-Range: %d-%d\r\nContent-Length: %d\r\n\r\n"
                  % (c.resolve(loc), start, start + len(body) - 1, len(body))).encode())
    sock.sendall(body[:held])
    return sock


def patch_accepted(test, c, loc, data, start):
    """A PATCH through client c of data at offset start, which test checks is accepted with
    the range it makes: the next Location."""
    r = c.patch(c.resolve(loc), data, headers=dict(
        OCTETS, **{"Content-Range": "%d-%d" % (start, start + len(data) - 1)}))
    test.assertStatus(r, 202)
    test.assertHeader(r, "Range", "0-%d" % (start + len(data) - 1))
    return r.header("Location")


def answer_head(sock):
    """The status line and headers of the answer on sock."""
    head = b""
    while b"\r\n\r\n" not in head:
        b = sock.recv(4096)
        if not b:
            break
        head += b
    return head.split(b"\r\n\r\n")[0].decode("latin-1")


class S3UploadTest(berthtest.TestCase):
    def setUp(self):
        if not berthtest.s3_mode():
            self.skipTest("S3 only (BERTH_STORAGE=s3, see tests/e2e/test_s3_suites.sh)")
        super().setUp()

    def uploads_prefix(self, repo, uuid):
        return "%s/docker/registry/v2/repositories/%s/_uploads/%s/" % (
            self.srv.s3_root.lstrip("/"), repo, uuid)

    def patch(self, c, loc, data, start):
        return patch_accepted(self, c, loc, data, start)

    def test_parts_accumulate_in_one_multipart_upload(self):
        """Whole-part PATCHes add parts to one upload: no object, no copy, nothing completed
        until the PUT; the hash state of each offset is Go's 108-byte sha256 state."""
        repo = self.repo()
        data = pattern(15 * MIB + 333)
        r = self.c.start_upload(repo)
        uuid = r.header("Docker-Upload-UUID")
        loc = r.header("Location")
        pre = self.uploads_prefix(repo, uuid)
        ids = set()
        for i in range(3):
            loc = self.patch(self.c, loc, data[i * 5 * MIB:(i + 1) * 5 * MIB], i * 5 * MIB)
            ups = open_uploads(pre)
            self.assertEqual([k for k, _ in ups], [pre + "data"])
            ids.add(ups[0][1])
            self.assertEqual(part_sizes(pre + "data", ups[0][1]), [5 * MIB] * (i + 1))
            keys = keys_below(pre)
            self.assertNotIn(pre + "data", keys, "the data is not an object before the PUT")
            state = pre + "hashstates/sha256/%d" % ((i + 1) * 5 * MIB)
            self.assertEqual(keys.get(state), 108)
            self.assertEqual(s3_get(state)[:4], b"sha\x03")
        self.assertEqual(len(ids), 1, "one multipart upload for the whole session")
        r = self.c.put(self.c.resolve(loc, {"digest": digest(data)}), data[15 * MIB:],
                       headers=OCTETS)
        self.assertStatus(r, 201)
        self.assertEqual(open_uploads(pre), [])
        self.assertEqual(keys_below(pre), {})
        r = self.c.get("/v2/%s/blobs/%s" % (repo, digest(data)))
        self.assertStatus(r, 200)
        self.assertEqual(r.body, data)

    def test_short_chunks_and_another_instance(self):
        """PATCHes of odd sizes alternate between two instances on one bucket: each continues
        what the other stored (a short part is completed before appending, as Distribution
        does); the status GET on either tells the size; the blob is whole."""
        other = berthtest.Server(delete=True)
        other.s3_root = self.srv.s3_root
        other.start()
        try:
            c2 = other.client()
            repo = self.repo()
            data = pattern(13 * MIB + 17, seed=11)
            r = self.c.start_upload(repo)
            loc = r.header("Location")
            cuts = [0, 3 * MIB + 1, 6 * MIB, 6 * MIB + 5, 11 * MIB + 2, len(data) - 10]
            clients = [self.c, c2]
            for i in range(len(cuts) - 1):
                c = clients[i % 2]
                loc = self.patch(c, loc, data[cuts[i]:cuts[i + 1]], cuts[i])
                st = clients[(i + 1) % 2].get(clients[(i + 1) % 2].resolve(loc))
                self.assertStatus(st, 204)
                self.assertHeader(st, "Range", "0-%d" % (cuts[i + 1] - 1))
            r = c2.put(c2.resolve(loc, {"digest": digest(data)}), data[cuts[-1]:], headers=OCTETS)
            self.assertStatus(r, 201)
            r = self.c.get("/v2/%s/blobs/%s" % (repo, digest(data)))
            self.assertStatus(r, 200)
            self.assertEqual(r.body, data)
        finally:
            other.stop()

    def test_upload_resumes_after_restart(self):
        """After a restart the status comes from the multipart upload left open, and the
        upload goes on from there."""
        repo = self.repo()
        data = pattern(8 * MIB + 99, seed=3)
        r = self.c.start_upload(repo)
        loc = self.patch(self.c, r.header("Location"), data[:7 * MIB], 0)
        self.srv.restart()
        c = self.srv.client()
        type(self).c = c
        st = c.get(c.resolve(loc))
        self.assertStatus(st, 204)
        self.assertHeader(st, "Range", "0-%d" % (7 * MIB - 1))
        r = c.put(c.resolve(loc, {"digest": digest(data)}), data[7 * MIB:], headers=OCTETS)
        self.assertStatus(r, 201)
        self.assertEqual(c.get("/v2/%s/blobs/%s" % (repo, digest(data))).body, data)

    def test_upload_resumes_after_a_crash_mid_patch(self):
        """berth killed (SIGKILL) while a PATCH streams: the parts it stored stay in the
        multipart upload, with no hash state for them; after the restart the status says how
        much is stored, the upload goes on from there (the data is rehashed) and the blob is
        whole."""
        repo = self.repo()
        data = pattern(16 * MIB + 3, seed=13)
        r = self.c.start_upload(repo)
        uuid = r.header("Docker-Upload-UUID")
        loc = r.header("Location")
        pre = self.uploads_prefix(repo, uuid)
        parts = kill_mid_body(self, "PATCH", self.c.resolve(loc), data, 12 * MIB, pre + "data")
        self.assertEqual(parts, [5 * MIB, 5 * MIB], "two parts stored mid-PATCH")
        self.srv.restart()
        c = self.srv.client()
        type(self).c = c
        st = c.get(c.resolve(loc))
        self.assertStatus(st, 204)
        self.assertHeader(st, "Range", "0-%d" % (10 * MIB - 1))
        loc = self.patch(c, st.header("Location"), data[10 * MIB:14 * MIB], 10 * MIB)
        r = c.put(c.resolve(loc, {"digest": digest(data)}), data[14 * MIB:], headers=OCTETS)
        self.assertStatus(r, 201)
        self.assertEqual(c.get("/v2/%s/blobs/%s" % (repo, digest(data))).body, data)
        self.assertEqual(open_uploads(pre), [])

    def test_patch_cut_short_leaves_the_upload_as_it_was(self):
        """A PATCH of known length sends its part while the bytes come; when its client leaves
        mid-part, that part is abandoned: the status says what was stored before the PATCH, no
        part of it stays in the multipart upload, and the upload goes on from there, through a
        second instance, to a whole blob."""
        repo = self.repo()
        data = pattern(17 * MIB + 5, seed=31)
        r = self.c.start_upload(repo)
        uuid = r.header("Docker-Upload-UUID")
        pre = self.uploads_prefix(repo, uuid)
        loc = self.patch(self.c, r.header("Location"), data[:5 * MIB], 0)
        pid = self.srv.proc.pid
        sock = patch_held(self.c, loc, data[5 * MIB:11 * MIB], 5 * MIB, 3 * MIB)
        try:
            # berth holds the bytes (the part's file has them) before the client leaves
            self.assertTrue(berthtest.wait_until(lambda: any(
                size >= 2 * MIB for size in deleted_files(pid).values()), 20),
                "the PATCH's bytes reached the part's file: %r" % deleted_files(pid))
        finally:
            sock.close()
        st = self.c.get(self.c.resolve(loc))
        self.assertStatus(st, 204)
        self.assertHeader(st, "Range", "0-%d" % (5 * MIB - 1))
        other = berthtest.Server(delete=True)
        other.s3_root = self.srv.s3_root
        other.start()
        try:
            c2 = other.client()
            deadline = time.time() + 20
            while True:  # the cut request may still hold the session (416) for a moment
                r = c2.patch(c2.resolve(loc), data[5 * MIB:12 * MIB], headers=dict(
                    OCTETS, **{"Content-Range": "%d-%d" % (5 * MIB, 12 * MIB - 1)}))
                if r.status != 416 or time.time() > deadline:
                    break
                time.sleep(0.1)
            self.assertStatus(r, 202)
            self.assertHeader(r, "Range", "0-%d" % (12 * MIB - 1))
            ups = open_uploads(pre)
            self.assertEqual([k for k, _ in ups], [pre + "data"])
            self.assertEqual(part_sizes(pre + "data", ups[0][1]), [5 * MIB, 5 * MIB, 2 * MIB])
        finally:
            other.stop()
        r = self.c.put(self.c.resolve(r.header("Location"), {"digest": digest(data)}), data[12 * MIB:],
                       headers=OCTETS)
        self.assertStatus(r, 201)
        self.assertEqual(self.c.get("/v2/%s/blobs/%s" % (repo, digest(data))).body, data)
        self.assertEqual(open_uploads(pre), [])

    def test_patch_cut_short_after_a_copy_leaves_no_upload_open(self):
        """The stored data is an object of more than a part (the PATCH before ended on a short
        part, completed by the next writer), so the next PATCH's writer starts a multipart
        upload whose first part copies it; that PATCH's client leaves before a new whole part:
        the upload it started is aborted (it holds only the copy), the status says what was
        stored before, and the upload completes whole."""
        repo = self.repo()
        data = pattern(14 * MIB + 7, seed=33)
        r = self.c.start_upload(repo)
        uuid = r.header("Docker-Upload-UUID")
        pre = self.uploads_prefix(repo, uuid)
        loc = self.patch(self.c, r.header("Location"), data[:6 * MIB], 0)
        before = open_uploads(pre)
        self.assertEqual(len(before), 1)
        self.assertEqual(part_sizes(pre + "data", before[0][1]), [5 * MIB, 1 * MIB])
        pid = self.srv.proc.pid
        sock = patch_held(self.c, loc, data[6 * MIB:12 * MIB], 6 * MIB, 2 * MIB)
        try:

            def copied_and_spooled():  # the new upload holds the copy; the PATCH's bytes came
                ups = [u for u in open_uploads(pre) if u[1] != before[0][1]]
                return (ups and part_sizes(pre + "data", ups[0][1]) and
                        any(size >= 1 * MIB for size in deleted_files(pid).values()))
            self.assertTrue(berthtest.wait_until(copied_and_spooled, 20),
                            "a new upload with the copy, the bytes in the part's file: %r %r"
                            % (open_uploads(pre), deleted_files(pid)))
        finally:
            sock.close()
        self.assertTrue(berthtest.wait_until(lambda: open_uploads(pre) == [], 10),
                        "no multipart upload left open: %r" % open_uploads(pre))
        self.assertEqual(keys_below(pre).get(pre + "data"), 6 * MIB, "the object as it was")
        st = self.c.get(self.c.resolve(loc))
        self.assertStatus(st, 204)
        self.assertHeader(st, "Range", "0-%d" % (6 * MIB - 1))
        r = self.c.put(self.c.resolve(loc, {"digest": digest(data)}), data[6 * MIB:], headers=OCTETS)
        self.assertStatus(r, 201)
        self.assertEqual(self.c.get("/v2/%s/blobs/%s" % (repo, digest(data))).body, data)
        self.assertEqual(open_uploads(pre), [])

    def test_streamed_part_failed_mid_body_is_sent_again(self):
        """A PATCH's part goes up while its bytes come; S3 fails that request mid-body while
        the client is paused (a reset, as from a server that gave up on a slow sender), and
        each of its retries too: once the client's bytes are all in, the part is sent again
        from the spool, the PATCH answers 202 and the blob is whole."""
        attempts = 6  # a request and its 5 retries (README, S3)
        c, requests = counted(self, proxy_args=["--fail-parts", str(attempts),
                                                "--fail-after", str(256 << 10)])
        repo = self.repo()
        data = pattern(7 * MIB + 11, seed=35)
        r = c.start_upload(repo)
        self.assertStatus(r, 202)
        loc = r.header("Location")

        def failed():
            return [x for x in requests() if x.endswith(" failed")]
        sock = patch_held(c, loc, data, 0, 2 * MIB)
        try:
            self.assertTrue(berthtest.wait_until(failed, 30),
                            "the streamed part failed while the client paused:\n" + "\n".join(requests()))
            sock.sendall(data[2 * MIB:])
            head = answer_head(sock)
        finally:
            sock.close()
        self.assertTrue(head.startswith("HTTP/1.1 202"), head)
        self.assertIn("\r\nRange: 0-%d\r\n" % (len(data) - 1), head + "\r\n")
        log = requests()
        self.assertEqual(len(failed()), attempts)
        self.assertTrue(all("?partNumber=1&" in x for x in failed()), failed())
        last_failed = max(i for i, x in enumerate(log) if x.endswith(" failed"))
        self.assertTrue(any("?partNumber=1&" in x for x in log[last_failed + 1:]),
                        "part 1 sent again:\n" + "\n".join(log))
        m = re.search(r"\r\nLocation: (\S+)", head)
        r = c.put(c.resolve(m.group(1), {"digest": digest(data)}), b"", headers=OCTETS)
        self.assertStatus(r, 201)
        self.assertEqual(self.c.get("/v2/%s/blobs/%s" % (repo, digest(data))).body, data)

    def test_cancel_aborts_the_multipart_upload(self):
        repo = self.repo()
        r = self.c.start_upload(repo)
        uuid = r.header("Docker-Upload-UUID")
        pre = self.uploads_prefix(repo, uuid)
        loc = self.patch(self.c, r.header("Location"), pattern(6 * MIB), 0)
        self.assertEqual(len(open_uploads(pre)), 1)
        r = self.c.delete(self.c.resolve(loc))
        self.assertStatus(r, 204)
        self.assertEqual(open_uploads(pre), [])
        self.assertEqual(keys_below(pre), {})

    def test_purge_aborts_the_multipart_upload(self):
        """An upload older than uploadpurging's age goes with its open multipart upload."""
        other = berthtest.Server(delete=True)
        other.start()
        try:
            repo = self.repo()
            c = other.client()
            r = c.start_upload(repo)
            uuid = r.header("Docker-Upload-UUID")
            loc = self.patch(c, r.header("Location"), pattern(6 * MIB), 0)
        finally:
            other.stop()
        pre = "%s/docker/registry/v2/repositories/%s/_uploads/%s/" % (
            other.s3_root.lstrip("/"), repo, uuid)
        self.assertEqual(len(open_uploads(pre)), 1)
        cfg = purging_config(other.s3_root)
        proc, c, tmp = berthtest.start_with_config(cfg, "berth-s3-purge-")
        try:
            deadline = time.time() + 15
            while time.time() < deadline and (open_uploads(pre) or keys_below(pre)):
                time.sleep(0.2)
            self.assertEqual(open_uploads(pre), [])
            self.assertEqual(keys_below(pre), {})
            self.assertStatus(c.get(c.resolve(loc)), 404)
        finally:
            proc.terminate()
            proc.wait(10)
            shutil.rmtree(tmp, ignore_errors=True)

    def test_existing_blob_leaves_nothing_behind(self):
        """A PUT of a blob that exists already stores nothing: the session's parts and the
        bytes of its last chunk go with it."""
        repo = self.repo()
        data = pattern(6 * MIB + 5, seed=5)
        self.c.push_blob(repo, data)
        r = self.c.start_upload(repo)
        uuid = r.header("Docker-Upload-UUID")
        pre = self.uploads_prefix(repo, uuid)
        loc = self.patch(self.c, r.header("Location"), data[:5 * MIB], 0)
        r = self.c.put(self.c.resolve(loc, {"digest": digest(data)}), data[5 * MIB:],
                       headers=OCTETS)
        self.assertStatus(r, 201)
        self.assertEqual(open_uploads(pre), [])
        self.assertEqual(keys_below(pre), {})


def listed_etags(prefix):
    """{key: ETag} of the objects whose key starts with prefix."""
    body = s3_get("", "list-type=2&prefix=" + urllib.parse.quote(prefix, safe="")).decode()
    return dict(re.findall(r"<Key>([^<]*)</Key>.*?<ETag>([^<]*)</ETag>", body, re.S))


class S3WholeUploadTest(berthtest.TestCase):
    """Uploads whose digest is known before their first byte go straight to the blob's key."""

    def setUp(self):
        if not berthtest.s3_mode():
            self.skipTest("S3 only (BERTH_STORAGE=s3, see tests/e2e/test_s3_suites.sh)")
        super().setUp()

    def root(self):
        return self.srv.s3_root.lstrip("/") + "/docker/registry/v2/"

    def blob_key(self, d):
        return self.root() + "blobs/sha256/%s/%s/data" % (d[7:9], d[7:])

    def counted(self):
        return counted(self)

    def test_monolithic_uploads_write_the_blob_key_only(self):
        """POST ?digest= with the body, and POST then PUT ?digest= with the whole body: the
        parts go to a multipart upload on the blob's key, completed once the digest matches.
        No server-side copy, nothing written below _uploads for the one-request POST, and
        nothing left behind."""
        c, requests = self.counted()
        repo = self.repo()
        data = pattern(12 * MIB + 5, seed=21)
        d = digest(data)
        r = c.post("/v2/%s/blobs/uploads/?digest=%s" % (repo, d), data, headers=OCTETS)
        self.assertStatus(r, 201)
        log = requests()
        self.assertEqual([x for x in log if x.endswith(" copy")], [], "no server-side copy")
        self.assertEqual([x for x in log if "/_uploads/" in x], [], "no session stored")
        key = urllib.parse.quote(self.blob_key(d))
        self.assertEqual(sum(1 for x in log if x.startswith("PUT /%s/%s?partNumber=" % (
            os.environ["S3_BUCKET"], key))), 3, "three 5 MiB parts to the blob's key:\n" + "\n".join(log))
        self.assertEqual(keys_below(self.blob_key(d)), {self.blob_key(d): len(data)})
        self.assertEqual(self.c.get("/v2/%s/blobs/%s" % (repo, d)).body, data)
        self.assertEqual(open_uploads(self.root() + "blobs/"), [])
        n_post = len(log)

        data2 = pattern(12 * MIB + 7, seed=22)
        d2 = digest(data2)
        r = c.start_upload(repo)
        uuid = r.header("Docker-Upload-UUID")
        r = c.put(c.resolve(r.header("Location"), {"digest": d2}), data2, headers=OCTETS)
        self.assertStatus(r, 201)
        log = requests()[n_post:]
        self.assertEqual([x for x in log if x.endswith(" copy")], [], "no server-side copy")
        self.assertEqual([x for x in log if "/_uploads/%s/data" % uuid in x and "partNumber" in x], [],
                         "no part below the session")
        self.assertEqual(self.c.get("/v2/%s/blobs/%s" % (repo, d2)).body, data2)
        self.assertEqual(keys_below(self.root() + "repositories/%s/_uploads/" % repo), {})
        self.assertEqual(open_uploads(self.root()), [])
        print("S3 requests: monolithic POST of 12 MiB %d, POST + PUT %d" % (n_post, len(log)))

    def test_body_of_one_part_is_one_put(self):
        """A whole upload (POST ?digest= with the body, or POST then PUT ?digest= with it) of more
        than S3's smallest part but not more than chunksize (8 MiB here) is one PutObject on the
        blob's key: no multipart upload (three requests for one)."""
        c, requests = counted(self, chunksize=8 * MIB)
        repo = self.repo()
        bucket = "/%s/" % os.environ["S3_BUCKET"]
        for k, monolithic in enumerate((True, False)):
            data = pattern(6 * MIB + 3 + k, seed=26 + k)
            d = digest(data)
            n = len(requests())
            if monolithic:
                r = c.post("/v2/%s/blobs/uploads/?digest=%s" % (repo, d), data, headers=OCTETS)
            else:
                r = c.start_upload(repo)
                n = len(requests())
                r = c.put(c.resolve(r.header("Location"), {"digest": d}), data, headers=OCTETS)
            self.assertStatus(r, 201)
            log = requests()[n:]
            self.assertEqual([x for x in log if "?uploads" in x or "uploadId=" in x], [],
                             "no multipart upload:\n" + "\n".join(log))
            key = urllib.parse.quote(self.blob_key(d))
            self.assertEqual([x for x in log if x.startswith("PUT %s%s" % (bucket, key))],
                             ["PUT %s%s" % (bucket, key)], "one PUT, of the blob:\n" + "\n".join(log))
            self.assertEqual(self.c.get("/v2/%s/blobs/%s" % (repo, d)).body, data)
        self.assertEqual(open_uploads(self.root()), [])

    def test_wrong_digest_leaves_nothing_at_the_blob_key(self):
        """A whole upload whose bytes do not match its digest: 400 DIGEST_INVALID, no object at
        the key of the digest claimed, no multipart upload left open, no session."""
        repo = self.repo()
        data = pattern(11 * MIB, seed=23)
        claimed = digest(data + b"x")
        r = self.c.post("/v2/%s/blobs/uploads/?digest=%s" % (repo, claimed), data, headers=OCTETS)
        self.assertError(r, 400, "DIGEST_INVALID")
        r = self.c.start_upload(repo)
        r = self.c.put(self.c.resolve(r.header("Location"), {"digest": claimed}), data, headers=OCTETS)
        self.assertError(r, 400, "DIGEST_INVALID")
        self.assertEqual(keys_below(self.blob_key(claimed)), {})
        self.assertEqual(keys_below(self.blob_key(digest(data))), {})
        self.assertEqual(open_uploads(self.root()), [])
        self.assertEqual(keys_below(self.root() + "repositories/%s/" % repo), {})
        self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (repo, claimed)), 404)

    def test_existing_blob_is_not_rewritten(self):
        """A whole upload of a blob already stored leaves the object as it was (same ETag: a
        reader in the middle of it is not cut off) and no multipart upload behind."""
        repo = self.repo()
        data = pattern(7 * MIB + 1, seed=24)
        d = self.c.push_blob(repo, data)
        before = listed_etags(self.blob_key(d))
        self.assertEqual(len(before), 1)
        r = self.c.post("/v2/%s/blobs/uploads/?digest=%s" % (self.repo(), d), data, headers=OCTETS)
        self.assertStatus(r, 201)
        self.assertEqual(listed_etags(self.blob_key(d)), before)
        self.assertEqual(open_uploads(self.root()), [])

    def test_crash_mid_upload_leaves_no_blob(self):
        """berth killed (SIGKILL) while a whole upload streams to the blob's key: no object
        there after the restart (the parts stay in an open multipart upload, which is not an
        object), the PUT retried succeeds, and the upload purge aborts what the crash left."""
        repo = self.repo()
        data = pattern(16 * MIB + 9, seed=25)
        d = digest(data)
        r = self.c.start_upload(repo)
        path = self.c.resolve(r.header("Location"), {"digest": d})
        key = self.blob_key(d)
        parts = kill_mid_body(self, "PUT", path, data, 12 * MIB, key)
        self.assertEqual(parts, [5 * MIB, 5 * MIB], "two parts stored on the blob's key mid-PUT")
        self.assertEqual(keys_below(key), {}, "no object at the blob's key")
        self.srv.restart()
        c = self.srv.client()
        type(self).c = c
        self.assertStatus(c.head("/v2/%s/blobs/%s" % (repo, d)), 404)
        self.assertEqual(len(open_uploads(key)), 1, "the crashed upload's parts")
        r = c.put(path, data, headers=OCTETS)
        self.assertStatus(r, 201)
        self.assertEqual(c.get("/v2/%s/blobs/%s" % (repo, d)).body, data)
        self.assertEqual(len(open_uploads(key)), 1, "the purge, not the next upload, takes it")
        cfg = purging_config(self.srv.s3_root)

        proc, _, tmp = berthtest.start_with_config(cfg, "berth-s3-purge-staged-")
        try:
            deadline = time.time() + 15
            while time.time() < deadline and open_uploads(key):
                time.sleep(0.2)
            self.assertEqual(open_uploads(key), [])
            self.assertEqual(c.get("/v2/%s/blobs/%s" % (repo, d)).body, data, "the blob stays")
        finally:
            proc.terminate()
            proc.wait(10)
            shutil.rmtree(tmp, ignore_errors=True)

def s3_send(method, path, query="", data=None):
    """A request to the bucket as any S3 client signs it (the object's bytes, when data is
    given): the answer's bytes."""
    e = os.environ
    cmd = ["curl", "-sf", "-X", method, "--aws-sigv4", "aws:amz:%s:s3" % e["S3_REGION"],
           "--user", "%s:%s" % (e["S3_ACCESS_KEY"], e["S3_SECRET_KEY"]),
           "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
           "%s/%s/%s%s" % (e["S3_ENDPOINT"], e["S3_BUCKET"], path, "?" + query if query else "")]
    if data is not None:
        cmd[1:1] = ["--data-binary", "@-", "-H", "Content-Type: application/octet-stream"]
    return subprocess.run(cmd, input=data, check=True, capture_output=True).stdout


class S3PatchRequestsTest(berthtest.TestCase):
    """A PATCH on the instance that took the session's last request: one ListParts checks that
    the multipart upload is as that request left it, and the hash state kept in memory holds
    (no startedat, committed, ListMultipartUploads or hash state read). Anything another
    instance, Distribution or a client of the bucket changed makes it open as before."""

    def setUp(self):
        if not berthtest.s3_mode():
            self.skipTest("S3 only (BERTH_STORAGE=s3, see tests/e2e/test_s3_suites.sh)")
        super().setUp()

    def start(self, chunksize=10 * MIB):
        """A counted berth (A) on this test's rootdirectory, 10 MiB parts as in the benchmark:
        (client, the requests so far, the session's key prefix maker)."""
        return counted(self, chunksize=chunksize)

    def begin(self, size, seed, chunksize=10 * MIB):
        """A counted berth (start) and a session started on it for `size` pattern bytes:
        (client, requests, repo, data, uuid, Location)."""
        c, requests = self.start(chunksize)
        repo = self.repo()
        r = c.start_upload(repo)
        return (c, requests, repo, pattern(size, seed=seed), r.header("Docker-Upload-UUID"),
                r.header("Location"))

    def data_key(self, repo, uuid):
        return "%s/docker/registry/v2/repositories/%s/_uploads/%s/data" % (
            self.srv.s3_root.lstrip("/"), repo, uuid)

    def patch(self, c, loc, data, start):
        return patch_accepted(self, c, loc, data, start)

    def kinds(self, log, uuid):
        """The requests of a slice of the log, each as a short name."""
        out = []
        for x in log:
            if "uploads=" in x:
                out.append("ListMultipartUploads")
            elif x.startswith("GET ") and "/%s/data?uploadId=" % uuid in x:
                out.append("ListParts")
            elif x.startswith("PUT ") and "/%s/data?partNumber=" % uuid in x:
                out.append("UploadPart")
            elif x.startswith("PUT ") and "/%s/hashstates/sha256/" % uuid in x:
                out.append("PUT hashstate")
            else:
                out.append(x.split("?")[0].replace("/%s/" % uuid, "/UUID/").split("/_uploads/")[-1]
                           if "/_uploads/" in x else x)
        return out

    def test_patch_costs_three_requests_on_the_same_instance(self):
        """5 MiB PATCHes in 10 MiB parts, all on one instance: the first opens the session from
        the bucket, each later one makes exactly ListParts, its UploadPart and the hash state's
        PUT (7 requests before: HEAD startedat, GET committed, ListMultipartUploads, ListParts,
        GET hashstate around the same two); the PUT's open is one ListParts too. The first
        reads no hash state: at offset 0 it is a new hasher's."""
        c, requests, repo, data, uuid, loc = self.begin(20 * MIB + 3, 51)
        counts = []
        for i in range(4):
            n = len(requests())
            loc = self.patch(c, loc, data[i * 5 * MIB:(i + 1) * 5 * MIB], i * 5 * MIB)
            got = self.kinds(requests()[n:], uuid)
            counts.append(len(got))
            if i == 0:
                self.assertNotIn("UUID/hashstates/sha256/0", got, "no state to read at 0")
            else:
                self.assertEqual(got, ["ListParts", "UploadPart", "PUT hashstate"], "PATCH %d" % i)
        n = len(requests())
        r = c.put(c.resolve(loc, {"digest": digest(data)}), data[20 * MIB:], headers=OCTETS)
        self.assertStatus(r, 201)
        got = self.kinds(requests()[n:], uuid)
        self.assertEqual(got[0], "ListParts", got)
        for k in ("startedat", "committed", "ListMultipartUploads"):
            self.assertNotIn(k, got[:3], "the PUT's open reads nothing more: %r" % got)
        self.assertEqual(self.c.get("/v2/%s/blobs/%s" % (repo, digest(data))).body, data)
        print("S3 requests per 5 MiB PATCH: %r; the PUT's %d" % (counts, len(got)))

    def test_patches_alternate_between_instances_after_the_cache_is_warm(self):
        """PATCHes on A (warm: three requests each) and B (the test's server) in turn, one of
        B's of an odd size (a short part, completed by the next PATCH): each time the other
        instance added to the upload, A's next PATCH continues the upload its ListParts found
        (listed again, it would be the same) and reads B's hash state; the status GET on
        either tells the size; the PUT on A after B's PATCH makes the whole blob."""
        c, requests, repo, data, uuid, loc = self.begin(31 * MIB + 7, 52)
        cuts = [0, 5 * MIB, 10 * MIB, 15 * MIB, 18 * MIB + 1, 23 * MIB + 1, 28 * MIB + 1, 31 * MIB]
        on = ["A", "A", "B", "B", "A", "A", "B"]
        for i, who in enumerate(on):
            cl = c if who == "A" else self.c
            n = len(requests())
            loc = self.patch(cl, loc, data[cuts[i]:cuts[i + 1]], cuts[i])
            got = self.kinds(requests()[n:], uuid)
            if who == "A" and i > 0 and on[i - 1] == "A":
                self.assertEqual(got, ["ListParts", "UploadPart", "PUT hashstate"],
                                 "PATCH %d on A after A's" % i)
            elif who == "A" and i > 0:
                # A's note no longer matches, but the upload is still listed with parts: A goes
                # on with it (no second listing: 12 requests before), reads the session and B's
                # hash state, completes B's short part, and starts the next upload.
                self.assertEqual(got, ["ListParts", "UUID/startedat", "UUID/committed",
                                       "UUID/hashstates/sha256/%d" % cuts[i], "UUID/data",
                                       "UUID/data", "ListMultipartUploads", "UploadPart",
                                       "UploadPart", "PUT hashstate"],
                                 "PATCH %d on A after B's" % i)
            for other in (c, self.c):
                st = other.get(other.resolve(loc))
                self.assertStatus(st, 204)
                self.assertHeader(st, "Range", "0-%d" % (cuts[i + 1] - 1))
        n = len(requests())
        r = c.put(c.resolve(loc, {"digest": digest(data)}), data[cuts[-1]:], headers=OCTETS)
        self.assertStatus(r, 201)
        self.assertIn("ListMultipartUploads", self.kinds(requests()[n:], uuid))
        self.assertEqual(self.c.get("/v2/%s/blobs/%s" % (repo, digest(data))).body, data)
        self.assertEqual(open_uploads(self.data_key(repo, uuid)), [])

    def test_cancel_on_another_instance_after_the_cache_is_warm(self):
        """A's next PATCH after B cancelled the session is 404 BLOB_UPLOAD_UNKNOWN (its
        multipart upload was aborted: nothing vouches for it), and stores nothing."""
        c, requests = self.start()
        repo = self.repo()
        data = pattern(10 * MIB, seed=53)
        r = c.start_upload(repo)
        uuid = r.header("Docker-Upload-UUID")
        loc = self.patch(c, r.header("Location"), data[:5 * MIB], 0)
        self.assertStatus(self.c.delete(self.c.resolve(loc)), 204)
        r = c.patch(c.resolve(loc), data[5 * MIB:], headers=dict(
            OCTETS, **{"Content-Range": "%d-%d" % (5 * MIB, 10 * MIB - 1)}))
        self.assertError(r, 404, "BLOB_UPLOAD_UNKNOWN")
        self.assertEqual(open_uploads(self.data_key(repo, uuid)), [])
        self.assertEqual(keys_below(self.data_key(repo, uuid).rsplit("/", 1)[0] + "/"), {})

    def start_distribution(self):
        """Debian's docker-registry (Distribution 2.8.2, its s3 driver) on this test's
        rootdirectory, 5 MiB parts: its client and its http.secret."""
        binary = shutil.which("docker-registry")
        if not binary:
            self.skipTest("docker-registry is not installed")
        tmp = tempfile.mkdtemp(prefix="berth-s3dist-")
        self.addCleanup(shutil.rmtree, tmp, True)
        port = berthtest.free_port()
        secret = "berth-s3patch-test"
        cfg = os.path.join(tmp, "config.yml")
        with open(cfg, "w") as f:
            f.write(berthtest.s3_config(self.srv.s3_root, delete=True, addr="127.0.0.1:%d" % port,
                                        http="  secret: %s\n" % secret))
        env = dict(os.environ)
        env.pop("AWS_CA_BUNDLE", None)  # Distribution 2.8.2's s3 driver panics with it set
        with open(os.path.join(tmp, "log"), "wb") as log:
            proc = subprocess.Popen([binary, "serve", cfg], stdout=log, stderr=subprocess.STDOUT, env=env)
        self.addCleanup(proc.wait, 10)
        self.addCleanup(proc.terminate)
        c = berthtest.Client("http://127.0.0.1:%d" % port)
        ok = berthtest.wait_until(lambda: proc.poll() is None and self.answers(c), 15)
        self.assertTrue(ok, "docker-registry did not start")
        return c, secret

    @staticmethod
    def answers(c):
        try:
            return c.get("/v2/").status == 200
        except OSError:
            return False

    @staticmethod
    def dist_state(secret, repo, uuid, offset):
        """Distribution's _state for an upload it did not start: base64url(HMAC-SHA256(secret,
        J) || J), J its JSON {Name, UUID, Offset, StartedAt}."""
        import base64
        import hashlib
        import hmac
        import json
        j = json.dumps({"Name": repo, "UUID": uuid, "Offset": offset,
                        "StartedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
        return base64.urlsafe_b64encode(hmac.new(secret.encode(), j, hashlib.sha256).digest() + j).decode()

    def test_distribution_patches_between_warm_patches(self):
        """berth (warm after two PATCHes), then Distribution 2.8.2 takes a PATCH of the same
        session on the bucket (appending a part, saving its hash state), then berth again:
        berth's next PATCH continues the upload its ListParts found (no listing) and resumes
        from Distribution's hash state, the one after it is warm again, and the blob is whole."""
        c, requests, repo, data, uuid, loc = self.begin(25 * MIB + 9, 56, chunksize=5 * MIB)
        dist, secret = self.start_distribution()
        for i in range(2):
            loc = self.patch(c, loc, data[i * 5 * MIB:(i + 1) * 5 * MIB], i * 5 * MIB)
        path = "/v2/%s/blobs/uploads/%s?_state=%s" % (repo, uuid, self.dist_state(secret, repo, uuid, 10 * MIB))
        r = dist.patch(path, data[10 * MIB:15 * MIB], headers=dict(
            OCTETS, **{"Content-Range": "%d-%d" % (10 * MIB, 15 * MIB - 1)}))
        self.assertStatus(r, 202)
        self.assertHeader(r, "Range", "0-%d" % (15 * MIB - 1))
        n = len(requests())
        loc = self.patch(c, loc, data[15 * MIB:20 * MIB], 15 * MIB)
        got = self.kinds(requests()[n:], uuid)
        # Its note no longer matches the parts, but the upload its ListParts found goes on:
        # the session's reads and Distribution's hash state, no listing (8 requests before).
        self.assertEqual(got, ["ListParts", "UUID/startedat", "UUID/committed",
                               "UUID/hashstates/sha256/%d" % (15 * MIB), "UploadPart", "PUT hashstate"])
        n = len(requests())
        loc = self.patch(c, loc, data[20 * MIB:25 * MIB], 20 * MIB)
        self.assertEqual(self.kinds(requests()[n:], uuid), ["ListParts", "UploadPart", "PUT hashstate"])
        r = c.put(c.resolve(loc, {"digest": digest(data)}), data[25 * MIB:], headers=OCTETS)
        self.assertStatus(r, 201)
        self.assertEqual(dist.get("/v2/%s/blobs/%s" % (repo, digest(data))).body, data)

    def test_part_rewritten_behind_the_instance_is_noticed(self):
        """A part rewritten in the bucket with other bytes of the same size (the size A left
        is unchanged, the part's ETag is not) and the hash state file gone: A's next request
        does not take its hash state for those bytes, it rehashes them, and the blob is the
        bytes the bucket holds."""
        c, requests, repo, data, uuid, loc = self.begin(10 * MIB + 11, 54)
        data = bytearray(data)
        for i in range(2):
            loc = self.patch(c, loc, bytes(data[i * 5 * MIB:(i + 1) * 5 * MIB]), i * 5 * MIB)
        key = self.data_key(repo, uuid)
        ups = open_uploads(key)
        self.assertEqual(len(ups), 1)
        data[5 * MIB:10 * MIB] = pattern(5 * MIB, seed=55)
        s3_send("PUT", key, "partNumber=2&uploadId=" + urllib.parse.quote(ups[0][1], safe=""),
                bytes(data[5 * MIB:10 * MIB]))
        s3_send("DELETE", key.rsplit("/", 1)[0] + "/hashstates/sha256/%d" % (10 * MIB))
        n = len(requests())
        r = c.put(c.resolve(loc, {"digest": digest(bytes(data))}), bytes(data[10 * MIB:]), headers=OCTETS)
        self.assertStatus(r, 201)
        self.assertIn("ListMultipartUploads", self.kinds(requests()[n:], uuid))
        self.assertEqual(self.c.get("/v2/%s/blobs/%s" % (repo, digest(bytes(data)))).body, bytes(data))


def open_files(pid, wanted):
    """{fd: size} of the files berth holds open whose link target wanted(target) accepts."""
    out = {}
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            if wanted(os.readlink(os.path.join(fd_dir, fd))):
                out[int(fd)] = os.stat(os.path.join(fd_dir, fd)).st_size
        except OSError:
            pass  # closed meanwhile
    return out


def spooled_files(pid, spool_dir):
    """{fd: size} of the files berth holds open in spool_dir (unlinked: "... (deleted)")."""
    return open_files(pid, lambda target: target.startswith(spool_dir + "/"))


def deleted_files(pid):
    """{fd: size} of the unlinked files berth holds open (an S3 writer's part spools)."""
    return open_files(pid, lambda target: target.endswith(" (deleted)"))


def post_held(port, repo, data, held):
    """A monolithic POST of data to repo whose body stops after `held` bytes: its socket."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(("POST /v2/%s/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: x\r\n"
               "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
               % (repo, digest(data), len(data))).encode())
    s.sendall(data[:held])
    return s


def finish_posts(test, socks, rests):
    """Sends the rest of each held POST's body and checks its answer is 201."""
    for s, rest in zip(socks, rests):
        s.sendall(rest)
    for s in socks:
        head = answer_head(s)
        test.assertTrue(head.startswith("HTTP/1.1 201"), head[:200])


def rss_anon_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


class S3PartSpoolTest(berthtest.OpsTestCase):
    """The part an S3 upload is filling waits in an unlinked temporary file in $TMPDIR (page
    cache), not in berth's own memory: uploads in progress do not each hold a part of private
    memory."""

    def setUp(self):
        if not berthtest.s3_mode():
            self.skipTest("S3 only (BERTH_STORAGE=s3, see tests/e2e/test_s3_suites.sh)")
        super().setUp()

    def start(self):
        self.spool = tempfile.mkdtemp(prefix="spool-", dir=self.tmp)
        root = "/spool-%d-%d" % (os.getpid(), int(time.time() * 1000))

        def make(port):
            cfg = os.path.join(self.tmp, "config-%d.yml" % port)
            with open(cfg, "w") as f:
                f.write(berthtest.s3_config(root, addr="127.0.0.1:%d" % port))
            return ["serve", cfg], {"TMPDIR": self.spool}
        return berthtest.spawn_berth(make, self.tmp)

    def test_parts_wait_in_temporary_files(self):
        """Four monolithic uploads stopped 4 MiB into their first 5 MiB part: each part is an
        unlinked file in $TMPDIR holding what came, berth's private memory grew by less than
        the 16 MiB held, and once the bodies end every blob is whole and no file stays open."""
        srv = self.start()
        pid = srv.proc.pid
        warm = pattern(6 * MIB, seed=1)  # threads, connections and buffers exist before the baseline
        r = srv.client().post("/v2/spool/warm/blobs/uploads/?digest=" + digest(warm), warm, headers=OCTETS)
        self.assertStatus(r, 201)
        self.assertEqual(spooled_files(pid, self.spool), {}, "the finished upload's files are closed")
        base = rss_anon_kib(pid)
        held = 4 * MIB
        blobs = [pattern(12 * MIB + k, seed=20 + k) for k in range(4)]
        socks = [post_held(srv.port, "spool/b%d" % k, data, held) for k, data in enumerate(blobs)]
        try:
            # The body pipe hands bytes on in steps once 64 KiB wait: all but the last are spooled.
            def all_spooled():
                files = spooled_files(pid, self.spool)
                return files if len(files) == 4 and min(files.values()) >= held - (64 << 10) else None
            files = berthtest.wait_until(all_spooled, 60)
            self.assertIsNotNone(files, "spooled: %r" % spooled_files(pid, self.spool))
            grown = rss_anon_kib(pid) - base
            if not os.environ.get("BERTH_SANITIZE"):  # AddressSanitizer's allocator keeps its own
                self.assertLess(grown, 8 << 10, "private memory grew by %d KiB for 16 MiB in parts" % grown)
            finish_posts(self, socks, [data[held:] for data in blobs])
        finally:
            for s in socks:
                s.close()
        for k, data in enumerate(blobs):
            r = srv.client().get("/v2/spool/b%d/blobs/%s" % (k, digest(data)))
            self.assertStatus(r, 200)
            self.assertEqual(r.body, data)
        self.assertTrue(berthtest.wait_until(lambda: spooled_files(pid, self.spool) == {}, 10),
                        "spool files left open: %r" % spooled_files(pid, self.spool))


    def test_small_parts_stay_in_memory(self):
        """A part spool makes its file only past 256 KiB: an upload of 200 KiB (a config, a
        small layer) held mid-body has none, one held at 700 KiB has one; both blobs whole."""
        srv = self.start()
        pid = srv.proc.pid
        blobs = [pattern(200 << 10, seed=41), pattern(1 * MIB, seed=42)]
        held = [150 << 10, 700 << 10]
        socks = [post_held(srv.port, "spool/s%d" % k, data, held[k]) for k, data in enumerate(blobs)]
        try:
            files = berthtest.wait_until(lambda: [
                n for n in spooled_files(pid, self.spool).values() if n >= held[1] - (64 << 10)], 60)
            self.assertEqual(len(files), 1, "one file, the larger upload's: %r" % spooled_files(pid, self.spool))
            self.assertEqual(len(spooled_files(pid, self.spool)), 1,
                             "no file for 200 KiB: %r" % spooled_files(pid, self.spool))
            finish_posts(self, socks, [data[h:] for data, h in zip(blobs, held)])
        finally:
            for s in socks:
                s.close()
        for k, data in enumerate(blobs):
            self.assertEqual(srv.client().get("/v2/spool/s%d/blobs/%s" % (k, digest(data))).body, data)


if __name__ == "__main__":
    berthtest.main()
