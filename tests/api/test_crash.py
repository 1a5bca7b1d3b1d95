"""Crash consistency: berth is killed with SIGKILL at random moments while many clients push
(small images sharing layers; monolithic, POST+PUT, chunked with Content-Range and streamed
PATCH uploads), then restarted on the same root, several rounds in a row. After each crash:

  - `berth fsck ROOT` (on the dead server's root) finds nothing but crash debris: orphan blobs
    (bytes moved in before their link was written), leftover temp files and upload sessions;
  - everything the registry acknowledged (a 201 for a blob or a manifest) is there and intact;
  - every tag in the catalog resolves to a manifest whose config and layers all download and
    hash to their digests (pushes that were cut short are either complete or invisible);
  - every blob linked into a repository downloads and hashes right (no half-written blob is
    ever visible);
  - every chunked upload that was in flight either resumes (GET gives its offset, which covers
    every acknowledged byte; PATCH from there and PUT ?digest= succeed and the blob hashes
    right) or is cleanly refused with 404 BLOB_UPLOAD_UNKNOWN.
At the end `berth fsck --repair` leaves only orphan blobs, and a last restart still serves every
acknowledged image.

Environment: CRASH_ROUNDS (default 6), CRASH_WORKERS (default 8), CRASH_SEED (random).
"""

import os
import random
import re
import threading
import time
import http.client

import berthtest
from berthtest import setUpModule, tearDownModule  # noqa: F401
from hardening_lib import (HTTPError, Registry, assert_fsck, berth_serve_args, det_bytes, image,
                           sha256)

ROUNDS = int(os.environ.get("CRASH_ROUNDS", "6"))
WORKERS = int(os.environ.get("CRASH_WORKERS", "8"))
SEED = int(os.environ.get("CRASH_SEED", str(random.randrange(1 << 30))))
REPOS = ["crash/a", "crash/b", "crash/deep/nested/c"]
CRASH_DEBRIS = ("orphan-blob", "temp-file", "stale-upload", "incomplete-tag")
NETWORK_ERRORS = (OSError, http.client.HTTPException)


class Round:
    """What the clients of one round were told, and what was in flight when berth died."""

    def __init__(self):
        self.lock = threading.Lock()
        self.killed = threading.Event()
        self.acked_tags = {}      # (repo, tag) -> manifest digest
        self.acked_blobs = {}     # digest -> repo
        self.interrupted = []     # (repo, upload path, data, bytes acknowledged)
        self.errors = []          # unexpected failures while the server was up
        self.pushes = 0


def worker(port, wid, rnd_no, st, shared, rnd):
    reg = Registry(port, timeout=15)
    i = 0
    while not st.killed.is_set():
        i += 1
        repo = rnd.choice(REPOS)
        tag = "r%d-w%d-%d" % (rnd_no, wid, i)
        config, layers, manifest = image(
            "%s %s" % (repo, tag), shared=rnd.sample(shared, rnd.randint(1, len(shared))),
            unique_size=rnd.randint(1, 4096),
            extra_layers=[det_bytes("big %s %s" % (repo, tag), rnd.randint(64, 768) * 1024)])
        cur = {}

        def on_location(loc, acked, data_holder=cur):
            data_holder["loc"], data_holder["acked"] = loc, acked

        try:
            blobs = [config] + layers
            for n, b in enumerate(blobs):
                cur.clear()
                cur["data"] = b
                big = n == len(blobs) - 1
                mode = rnd.choice(("chunked", "stream")) if big else rnd.choice(
                    ("mono", "post-put", "chunked", "stream"))
                d = reg.push_blob(repo, b, mode, chunk=rnd.choice((48 * 1024, 100 * 1024, 256 * 1024)),
                                  on_location=on_location, pause=0.002 if big else 0.0)
                with st.lock:
                    st.acked_blobs[d] = repo
            cur.clear()
            d = reg.put_manifest(repo, tag, manifest)
            if d != sha256(manifest):
                raise AssertionError("PUT manifest answered digest %s for %s" % (d, sha256(manifest)))
            with st.lock:
                st.acked_tags[(repo, tag)] = d
                st.pushes += 1
        except NETWORK_ERRORS as e:
            if not st.killed.is_set():
                with st.lock:
                    st.errors.append("worker %d: %s: %r" % (wid, tag, e))
            if "loc" in cur:
                with st.lock:
                    st.interrupted.append((repo, cur["loc"], cur["data"], cur["acked"]))
            return
        except (HTTPError, AssertionError) as e:
            # A server that is being killed cannot answer: any answer it gave was wrong.
            with st.lock:
                st.errors.append("worker %d: %s: %s" % (wid, tag, e))
            return
    reg.close()


def linked_blobs(root):
    """(repo, digest) of every _layers link on disk."""
    out = []
    top = os.path.join(root, "docker/registry/v2/repositories")
    for dirpath, dirnames, filenames in os.walk(top):
        if "link" in filenames and "/_layers/" in dirpath + "/":
            m = re.match(r"(.*)/_layers/(sha256|sha512)/([0-9a-f]+)$", os.path.relpath(dirpath, top))
            if m:
                out.append((m.group(1), "%s:%s" % (m.group(2), m.group(3))))
    return out


class CrashTest(berthtest.OpsTestCase):
    def start(self, root):
        return self.spawn(lambda port: (berth_serve_args(root, port), {}))

    def resume(self, reg, repo, loc, data, acked):
        """Resumes an interrupted upload; returns 'resumed' or 'refused'."""
        st, h, b = reg.request("GET", loc)
        if st == 404:
            self.assertIn(b"BLOB_UPLOAD_UNKNOWN", b, "404 without BLOB_UPLOAD_UNKNOWN: %r" % b)
            return "refused"
        self.assertEqual(st, 204, "GET %s after the crash: %d %r" % (loc, st, b))
        m = re.match(r"^0-(\d+)$", h.get("Range", ""))
        self.assertTrue(m, "GET %s: Range %r" % (loc, h.get("Range")))
        end = int(m.group(1))
        path = reg.path_of(h["Location"]) if h.get("Location") else loc
        # "0-0" is either nothing or one byte (Distribution's form): try both.
        for size in ([end + 1] if end > 0 else [1, 0]):
            self.assertLessEqual(size, len(data), "upload %s reports %d bytes of %d sent"
                                 % (loc, size, len(data)))
            if size < len(data):
                st2, h2, b2 = reg.request("PATCH", path, data[size:], {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": "%d-%d" % (size, len(data) - 1)})
                if st2 == 416 and end == 0 and size == 1:
                    continue
                self.assertEqual(st2, 202, "PATCH %s from %d: %d %r" % (path, size, st2, b2))
                path = reg.path_of(h2["Location"])
            self.assertGreaterEqual(size, acked, "upload %s lost acknowledged bytes: offset %d < %d"
                                    % (loc, size, acked))
            st3, _, b3 = reg.request("PUT", reg.with_query(path, digest=sha256(data)), b"")
            self.assertEqual(st3, 201, "PUT %s ?digest after resuming at %d: %d %r"
                             % (path, size, st3, b3))
            reg.get_blob(repo, sha256(data))
            return "resumed"
        self.fail("upload %s could not be resumed" % loc)

    def test_sigkill_during_pushes(self):
        rnd = random.Random(SEED)
        print("CRASH_SEED=%d rounds=%d workers=%d" % (SEED, ROUNDS, WORKERS))
        root = self.path("store", "root")
        os.makedirs(root)
        shared = [det_bytes("shared %d" % i, (i + 1) * 40 * 1024) for i in range(4)]
        acked_tags, acked_blobs = {}, {}
        totals = {"pushes": 0, "interrupted": 0, "resumed": 0, "refused": 0, "debris": 0}

        for rnd_no in range(ROUNDS):
            srv = self.start(root)
            st = Round()
            threads = [threading.Thread(target=worker, args=(srv.port, w, rnd_no, st, shared,
                                                             random.Random(rnd.random())))
                       for w in range(WORKERS)]
            for t in threads:
                t.start()
            time.sleep(rnd.uniform(0.3, 1.5))
            st.killed.set()
            srv.proc.kill()  # SIGKILL: no chance to clean up anything
            srv.proc.wait(timeout=10)
            for t in threads:
                t.join(timeout=30)
                self.assertFalse(t.is_alive(), "a client is stuck after the crash")
            self.assertEqual(st.errors, [], "failures while the server was up:\n" + "\n".join(st.errors))
            totals["pushes"] += st.pushes
            totals["interrupted"] += len(st.interrupted)
            acked_tags.update(st.acked_tags)
            acked_blobs.update(st.acked_blobs)

            # The dead server's store: only crash debris.
            problems = assert_fsck(self, root, CRASH_DEBRIS)
            totals["debris"] += len(problems)
            # A tag whose write was cut short between its index link and its current link is
            # listed (tags/list lists the tag directories, as Distribution's does) but does
            # not resolve: fsck calls it incomplete-tag.
            incomplete = set()
            for kind, path, _ in problems:
                m = re.match(r".*/repositories/(.*)/_manifests/tags/([^/]+)$", path)
                if kind == "incomplete-tag" and m:
                    incomplete.add((m.group(1), m.group(2)))
            totals["incomplete-tag"] = totals.get("incomplete-tag", 0) + len(incomplete)

            srv2 = self.start(root)
            reg = Registry(srv2.port)
            # Everything acknowledged survived, intact.
            for (repo, tag), d in sorted(acked_tags.items()):
                self.assertEqual(reg.verify_image(repo, tag), d, "%s:%s moved" % (repo, tag))
            for d, repo in sorted(acked_blobs.items()):
                reg.get_blob(repo, d)
            # Every tag there is (acknowledged or not) is a complete image.
            ntags = 0
            for repo in reg.catalog():
                for tag in reg.tags(repo):
                    if (repo, tag) in incomplete:
                        st4, _, _ = reg.request("GET", "/v2/%s/manifests/%s" % (repo, tag))
                        self.assertEqual(st4, 404)
                        continue
                    reg.verify_image(repo, tag)
                    ntags += 1
            self.assertGreaterEqual(ntags, len(acked_tags))
            # No linked blob is half-written.
            for repo, d in linked_blobs(root):
                reg.get_blob(repo, d)
            # In-flight chunked uploads resume, or are refused cleanly.
            for repo, loc, data, acked in st.interrupted:
                totals[self.resume(reg, repo, loc, data, acked)] += 1
            self.assertEqual(reg.ping(), 200)
            reg.close()
            self.assertEqual(srv2.stop(), 0, "berth did not stop cleanly:\n" + srv2.describe())

        print("totals: %s; %d acknowledged tags, %d acknowledged blobs"
              % (totals, len(acked_tags), len(acked_blobs)))
        self.assertGreater(totals["pushes"], 0, "no push completed in any round")

        # Repair removes the debris; only orphans (garbage collection's business) remain.
        assert_fsck(self, root, CRASH_DEBRIS, repair=True)
        assert_fsck(self, root, ("orphan-blob",))
        srv3 = self.start(root)
        reg = Registry(srv3.port)
        for (repo, tag), d in sorted(acked_tags.items()):
            self.assertEqual(reg.verify_image(repo, tag), d)
        reg.close()


if __name__ == "__main__":
    berthtest.main()
