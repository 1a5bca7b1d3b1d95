"""Disk full: berth's root on a small tmpfs (mount -t tmpfs -o size=20m), pushed until full.

  - the push that does not fit gets a clear 5xx (507 Insufficient Storage with the OCI error
    JSON), whatever the upload style (monolithic POST, POST+PUT, chunked PATCH) and for a
    manifest PUT; berth keeps answering;
  - the partial upload is either gone (404) or resumable: its offset never exceeds what was
    sent, and once space is freed it completes and hashes right;
  - what was there before is untouched: earlier images pull byte-identical and `berth fsck`
    finds no problem (an interrupted manifest PUT may leave at most an orphan blob);
  - after freeing space (cancelling uploads, deleting blobs, garbage-collect) berth works
    again: new pushes succeed and pull back intact.
Skipped (with a message) when tmpfs cannot be mounted (not root, or no permission).
"""

import os
import subprocess
import unittest

import berthtest
from berthtest import setUpModule, tearDownModule  # noqa: F401
from hardening_lib import (Registry, assert_fsck, berth_serve_args, det_bytes, image,
                           push_image, sha256)

SIZE_MIB = 20
BLOB = 2 * 1024 * 1024


def try_mount(path):
    if os.geteuid() != 0:
        return "not running as root"
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % SIZE_MIB, "tmpfs", path],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return "mount -t tmpfs failed: %s" % (p.stderr.strip() or p.returncode)
    return None


def fill_up(path):
    """Appends to path until the file system is full."""
    try:
        with open(path, "ab") as f:
            for size in (1 << 20, 4096):
                try:
                    while True:
                        f.write(b"\0" * size)
                        f.flush()
                except OSError:
                    pass
    except OSError:  # the close's flush: full
        pass


class DiskFullTest(berthtest.OpsTestCase):
    def setUp(self):
        self.mnt = self.path("mnt", "x")
        self.mnt = os.path.dirname(self.mnt)
        why = try_mount(self.mnt)
        if why:
            self.skipTest("cannot mount a tmpfs (%s): disk-full test skipped" % why)
        self.addCleanup(lambda: subprocess.run(["umount", "-l", self.mnt], capture_output=True))
        self.root = os.path.join(self.mnt, "root")
        os.makedirs(self.root)

    def start(self):
        s = self.spawn(lambda port: (berth_serve_args(self.root, port, "--delete"), {}))
        self.addCleanup(s.kill)  # before the unmount (cleanups run last-in first-out)
        return s

    def assert_507(self, st, h, b, what):
        self.assertEqual(st, 507, "%s on a full disk: %d %r" % (what, st, b[:300]))
        self.assertIn(b'"errors"', b, "%s: 507 without the OCI error JSON" % what)

    def free_bytes(self):
        v = os.statvfs(self.mnt)
        return v.f_bavail * v.f_frsize

    def test_push_until_full(self):
        srv = self.start()
        reg = Registry(srv.port)
        self.addCleanup(reg.close)

        # Before: two images, which must survive everything below byte for byte.
        before = []
        for i in range(2):
            cfg, layers, man = image("before %d" % i, unique_size=300 * 1024)
            push_image(reg, "full/keep", "v%d" % i, cfg, layers, man)
            before.append(("v%d" % i, sha256(man)))

        def intact():
            for tag, d in before:
                self.assertEqual(reg.verify_image("full/keep", tag), d)
            self.assertEqual(reg.ping(), 200)

        # An upload begun while there is room, continued once there is none.
        chunked = det_bytes("chunked", BLOB)
        partial = reg.start_upload("full/more")
        st, h, b = reg.request("PATCH", partial, chunked[:512 * 1024], {
            "Content-Type": "application/octet-stream", "Content-Range": "0-%d" % (512 * 1024 - 1)})
        self.assertEqual(st, 202, b)
        partial = reg.path_of(h["Location"])

        # Fill it with monolithic pushes until one does not fit.
        pushed, n = [], 0
        while True:
            n += 1
            self.assertLess(n, 40, "a %d MiB tmpfs never filled up" % SIZE_MIB)
            data = det_bytes("filler %d" % n, BLOB)
            st, h, b = reg.request("POST", "/v2/full/fill/blobs/uploads/?digest=%s" % sha256(data),
                                   data, {"Content-Type": "application/octet-stream"})
            if st == 201:
                pushed.append(data)
                continue
            self.assert_507(st, h, b, "monolithic POST")
            break
        intact()
        print("full after %d blobs; %d bytes free" % (len(pushed), self.free_bytes()))

        # Every other way of writing fails cleanly too.
        data = det_bytes("post-put", BLOB)
        st, h, b = reg.request("POST", "/v2/full/more/blobs/uploads/")
        if st == 202:
            loc = reg.path_of(h["Location"])
            st, h, b = reg.request("PUT", reg.with_query(loc, digest=sha256(data)), data,
                                   {"Content-Type": "application/octet-stream"})
        self.assert_507(st, h, b, "POST+PUT")
        intact()

        off = 512 * 1024
        while off < len(chunked):
            piece = chunked[off:off + 512 * 1024]
            st, h, b = reg.request("PATCH", partial, piece, {
                "Content-Type": "application/octet-stream",
                "Content-Range": "%d-%d" % (off, off + len(piece) - 1)})
            if st != 202:
                break
            partial = reg.path_of(h["Location"])
            off += len(piece)
        self.assert_507(st, h, b, "chunked PATCH")
        intact()

        # A manifest put (its blobs are all there) cannot be stored either, and leaves no tag.
        cfg, layers, man = image("after", unique_size=1000)
        st, h, b = reg.request("PUT", "/v2/full/keep/manifests/after", man,
                               {"Content-Type": berthtest.OCI_MANIFEST})
        if st == 201:
            self.skipTest("unexpected: enough room left for a manifest")
        self.assertIn(st, (400, 507), b)  # 400: its blobs could not be pushed first
        st, _, _ = reg.request("GET", "/v2/full/keep/manifests/after")
        self.assertEqual(st, 404)
        self.assertNotIn("after", reg.tags("full/keep"))
        intact()

        # The partial upload is gone or resumable (never more bytes than were sent).
        st, h, b = reg.request("GET", partial)
        self.assertIn(st, (204, 404), b)
        resumable = st == 204
        if resumable:
            end = int(h["Range"].split("-")[1])
            self.assertLessEqual(end + 1, len(chunked))
            self.assertGreaterEqual(end + 1, 512 * 1024, "acknowledged bytes lost")

        # The store holds nothing broken (berth is idle; fsck only reads). Known berth issue:
        # a POST that fails for lack of space leaves its empty _uploads/<id> directory behind
        # (see test_failed_upload_create_leaves_nothing): tolerated here as stale-upload.
        assert_fsck(self, self.root, ("orphan-blob", "stale-upload"))

        # Free space: unlink the filler blobs, collect them offline.
        for data in pushed:
            st, _, b = reg.request("DELETE", "/v2/full/fill/blobs/%s" % sha256(data))
            self.assertEqual(st, 202, b)
        reg.close()
        self.assertEqual(srv.stop(), 0, srv.describe())
        p = berthtest.run_berth(["garbage-collect", "--root", self.root], timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertGreater(self.free_bytes(), len(pushed) * BLOB // 2)

        srv = self.start()
        reg = Registry(srv.port)
        self.addCleanup(reg.close)
        intact()
        if resumable:
            st, h, b = reg.request("GET", partial)
            self.assertEqual(st, 204, b)
            size = int(h["Range"].split("-")[1]) + 1
            if h["Range"] == "0-0":
                size = 0 if reg.request("PATCH", partial, chunked[1:], {
                    "Content-Range": "1-%d" % (len(chunked) - 1)})[0] == 416 else len(chunked)
            loc = partial
            if size < len(chunked):
                st, h, b = reg.request("PATCH", loc, chunked[size:], {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": "%d-%d" % (size, len(chunked) - 1)})
                self.assertEqual(st, 202, b)
                loc = reg.path_of(h["Location"])
            st, h, b = reg.request("PUT", reg.with_query(loc, digest=sha256(chunked)), b"")
            self.assertEqual(st, 201, b)
            self.assertEqual(reg.get_blob("full/more", sha256(chunked)), chunked)
        # New pushes work again.
        push_image(reg, "full/keep", "after", cfg, layers, man)
        self.assertEqual(reg.verify_image("full/keep", "after"), sha256(man))
        reg.push_blob("full/more", data, "post-put")
        self.assertEqual(reg.get_blob("full/more", sha256(data)), data)
        # full/more's blobs have no manifest: orphans, garbage-collect's business.
        assert_fsck(self, self.root, ("orphan-blob", "stale-upload"))

    def test_failed_upload_create_leaves_nothing(self):
        """POST /v2/<name>/blobs/uploads/ refused with 507 must not leave an empty
        _uploads/<id> directory: without its startedat file nothing ever purges it."""
        srv = self.start()
        reg = Registry(srv.port)
        self.addCleanup(reg.close)
        # fill the tmpfs completely with a plain file
        with open(os.path.join(self.mnt, "ballast"), "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        for _ in range(3):
            st, h, b = reg.request("POST", "/v2/full/nospace/blobs/uploads/")
            self.assert_507(st, h, b, "POST upload")
        uploads = os.path.join(self.root, "docker/registry/v2/repositories/full/nospace/_uploads")
        left = os.listdir(uploads) if os.path.isdir(uploads) else []
        self.assertEqual(left, [], "failed POSTs left upload directories behind")

    def test_failed_monolithic_post_leaves_no_session(self):
        """A one-request upload (POST ?digest=) that fails for lack of room, while its body is
        written or at its commit, leaves no session behind: its id was never given out, so
        nothing but the 7-day purge would ever remove it."""
        srv = self.start()
        reg = Registry(srv.port)
        self.addCleanup(reg.close)
        ballast = os.path.join(self.mnt, "ballast")
        fill_up(ballast)
        uploads = os.path.join(self.root, "docker/registry/v2/repositories/full/oneshot/_uploads")
        refused = 0
        # room for the data alone (or a little less, or a little more): the failure falls in
        # the body's writing or in the commit's own files and renames
        for k, room in enumerate((256 * 1024, 64 * 1024, 16 * 1024, 8 * 1024, 4096)):
            os.truncate(ballast, max(0, os.path.getsize(ballast) - room))
            size = room - 4096 + 512 * (k % 3)
            data = det_bytes("one shot %d" % k, size)
            st, h, b = reg.request("POST", "/v2/full/oneshot/blobs/uploads/?digest=%s" % sha256(data),
                                   data, {"Content-Type": "application/octet-stream"})
            self.assertIn(st, (201, 507), b)
            refused += st == 507
            left = os.listdir(uploads) if os.path.isdir(uploads) else []
            self.assertEqual(left, [], "a failed one-request upload (%d bytes) left its session" % size)
            if st == 201:
                self.assertEqual(reg.get_blob("full/oneshot", sha256(data)), data)
            fill_up(ballast)  # full again
        self.assertGreater(refused, 0, "no upload was refused: the disk never filled")


if __name__ == "__main__":
    berthtest.main()
