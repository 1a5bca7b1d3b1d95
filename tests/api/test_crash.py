"""Crash consistency: berth is killed with SIGKILL at random moments while many clients push
(small images sharing layers; monolithic, POST+PUT, chunked with Content-Range and streamed
PATCH uploads) and delete some of them again (by tag and by digest), then restarted on the
same root, several rounds in a row. After each crash:

  - `berth fsck ROOT` (on the dead server's root) finds nothing but crash debris: orphan blobs
    (bytes moved in before their link was written), leftover temp files and upload sessions,
    tags whose write was cut short (incomplete-tag) and tags left naming a manifest whose
    delete was cut short before the untagging;
  - everything the registry acknowledged (a 201 for a blob or a manifest, a 202 for a
    delete) is there and intact, or stays deleted;
  - every tag in the catalog resolves to a manifest whose config and layers all download and
    hash to their digests (pushes that were cut short are either complete or invisible), but
    for the tags fsck reported as cut short, which answer 404;
  - every blob linked into a repository downloads and hashes right (no half-written blob is
    ever visible);
  - every chunked upload that was in flight either resumes (GET gives its offset, which covers
    every acknowledged byte; PATCH from there and PUT ?digest= succeed and the blob hashes
    right) or is cleanly refused with 404 BLOB_UPLOAD_UNKNOWN.
At the end `berth fsck --repair` leaves only orphan blobs, and a last restart still serves every
acknowledged image.

Environment: CRASH_ROUNDS (default 5), CRASH_WORKERS (default 8), CRASH_SEED (random).
"""

import os
import random
import re
import threading
import time
import unittest
import http.client

import berthtest
from berthtest import setUpModule, tearDownModule  # noqa: F401
from hardening_lib import (HTTPError, Registry, assert_fsck, berth_serve_args, det_bytes, fsck,
                           image, sha256)

ROUNDS = int(os.environ.get("CRASH_ROUNDS", "5"))
WORKERS = int(os.environ.get("CRASH_WORKERS", "8"))
SEED = int(os.environ.get("CRASH_SEED", str(random.randrange(1 << 30))))
REPOS = ["crash/a", "crash/b", "crash/deep/nested/c"]
CRASH_DEBRIS = ("orphan-blob", "temp-file", "stale-upload", "incomplete-tag")
# A delete by digest cut short between removing the revision and untagging leaves a tag naming
# a manifest that is no longer a revision: fsck reports that dangling-link (the tag answers 404).
INTERRUPTED_DELETE = re.compile(r"^tag (\S+):(\S+) names \S+, which is not a manifest revision of ")
NETWORK_ERRORS = (OSError, http.client.HTTPException)


class Round:
    """What the clients of one round were told, and what was in flight when berth died."""

    def __init__(self):
        self.lock = threading.Lock()
        self.killed = threading.Event()
        self.acked_tags = {}      # (repo, tag) -> manifest digest
        self.acked_deletes = []   # (repo, tag, digest, by_digest) deleted with a 202
        self.deleting = set()     # (repo, tag) whose DELETE was in flight at the crash
        self.acked_blobs = {}     # digest -> repo
        self.interrupted = []     # (repo, upload path, data, bytes acknowledged)
        self.errors = []          # unexpected failures while the server was up
        self.pushes = 0


def worker(port, wid, rnd_no, st, shared, rnd):
    reg = Registry(port, timeout=15)
    i = 0
    mine = []  # (repo, tag, digest) this worker pushed this round
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
            mine.append((repo, tag, d))
            # Now and then delete one of this worker's images: by tag, or by digest (which
            # removes the revision, then untags).
            if len(mine) > 2 and rnd.random() < 0.35:
                drepo, dtag, dd = mine.pop(rnd.randrange(len(mine) - 1))
                by_digest = rnd.random() < 0.5
                cur.clear()
                with st.lock:  # until the 202, the tag's fate is unknown
                    st.deleting.add((drepo, dtag))
                stdel, _, b = reg.request("DELETE", "/v2/%s/manifests/%s" % (drepo, dd if by_digest else dtag))
                if stdel != 202:
                    raise HTTPError("DELETE %s:%s" % (drepo, dtag), stdel, b)
                with st.lock:
                    st.deleting.discard((drepo, dtag))
                    st.acked_deletes.append((drepo, dtag, dd, by_digest))
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
    complete = 0
    emptied = 0  # the known bug above

    def start(self, root):
        return self.spawn(lambda port: (berth_serve_args(root, port, "--delete"), {}))

    def check_fsck(self, root, repair=False):
        """fsck finds nothing but crash debris; returns the (repo, tag) pairs it reports as
        unresolvable (incomplete tags and tags left by an interrupted delete)."""
        rc, problems, out = fsck(root, repair)
        dead = set()
        for kind, path, detail in problems:
            m = re.match(r".*/repositories/(.*)/_manifests/tags/([^/]+)$", path)
            d = INTERRUPTED_DELETE.match(detail)
            if kind == "incomplete-tag" and m:
                dead.add((m.group(1), m.group(2)))
            elif kind == "dangling-link" and d:
                dead.add((d.group(1), d.group(2)))
            elif kind not in CRASH_DEBRIS:
                self.fail("berth fsck%s: unexpected problem %s %s: %s\n%s" % (
                    " --repair" if repair else "", kind, path, detail, out[-6000:]))
        self.assertEqual(rc, 1 if problems else 0, out)
        return problems, dead

    def resume(self, reg, repo, loc, data, acked):
        """Resumes an interrupted upload; returns 'resumed' or 'refused'."""
        st, h, b = reg.request("GET", loc)
        if st == 404:
            self.assertIn(b"BLOB_UPLOAD_UNKNOWN", b, "404 without BLOB_UPLOAD_UNKNOWN: %r" % b)
            # Only a commit removes a session: every byte had been sent, and the blob is there.
            self.assertEqual(acked, len(data), "upload %s vanished with %d of %d bytes sent"
                             % (loc, acked, len(data)))
            reg.get_blob(repo, sha256(data))
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
            # Never fewer bytes than were acknowledged; even when the crash hit the closing PUT
            # after it had moved the data into the blob store (before it removed the session),
            # the session still reports its full size and the retried PUT completes it.
            # KNOWN BUG (test_crash_points.test_kill_during_session_removal): a crash while the
            # commit removes the session, after its data (or 'committed' record) is gone and
            # before startedat is, leaves a live session reporting 0 bytes. Tolerated here (the
            # closing PUT was in flight: every byte acknowledged, the session empty); resending
            # everything works.
            if size == 0 and acked == len(data) and end == 0:
                self.emptied += 1
            else:
                self.assertGreaterEqual(size, acked, "upload %s lost acknowledged bytes: "
                                        "offset %d < %d" % (loc, size, acked))
            if size == len(data):
                self.complete += 1
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
        acked_tags, acked_blobs, deleted = {}, {}, []
        totals = {"pushes": 0, "deletes": 0, "interrupted": 0, "resumed": 0, "refused": 0,
                  "debris": 0, "dead tags": 0}

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
            for repo, tag, d, by_digest in st.acked_deletes:
                acked_tags.pop((repo, tag), None)
                deleted.append((repo, tag, d, by_digest))
            for repo, tag in st.deleting:  # may or may not be gone: no longer promised
                acked_tags.pop((repo, tag), None)
            totals["deletes"] += len(st.acked_deletes)

            # The dead server's store: only crash debris. A tag whose write was cut short
            # between its index link and its current link, or whose manifest's delete was cut
            # short before untagging, is listed (tags/list lists the tag directories, as
            # Distribution's does) but does not resolve: fsck reports both.
            problems, dead = self.check_fsck(root)
            totals["debris"] += len(problems)
            totals["dead tags"] += len(dead)

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
                    if (repo, tag) in dead:
                        st4, _, _ = reg.request("GET", "/v2/%s/manifests/%s" % (repo, tag))
                        self.assertEqual(st4, 404)
                        continue
                    reg.verify_image(repo, tag)
                    ntags += 1
            self.assertGreaterEqual(ntags, len(acked_tags))
            # What was deleted stays deleted.
            for repo, tag, d, by_digest in deleted:
                self.assertEqual(reg.request("GET", "/v2/%s/manifests/%s" % (repo, tag))[0], 404,
                                 "deleted tag %s:%s is back" % (repo, tag))
                if by_digest:
                    self.assertEqual(reg.request("GET", "/v2/%s/manifests/%s" % (repo, d))[0], 404,
                                     "deleted manifest %s@%s is back" % (repo, d))
            # No linked blob is half-written.
            for repo, d in linked_blobs(root):
                reg.get_blob(repo, d)
            # In-flight chunked uploads resume, or are refused cleanly.
            for repo, loc, data, acked in st.interrupted:
                totals[self.resume(reg, repo, loc, data, acked)] += 1
            self.assertEqual(reg.ping(), 200)
            reg.close()
            self.assertEqual(srv2.stop(), 0, "berth did not stop cleanly:\n" + srv2.describe())

        print("totals: %s; %d acknowledged tags, %d acknowledged blobs, %d sessions found complete, "
              "%d found emptied by a cut commit (known bug)"
              % (totals, len(acked_tags), len(acked_blobs), self.complete, self.emptied))
        self.assertGreater(totals["pushes"], 0, "no push completed in any round")

        # Repair removes the debris; only orphans (garbage collection's business) remain.
        self.check_fsck(root, repair=True)
        assert_fsck(self, root, ("orphan-blob",))
        srv3 = self.start(root)
        reg = Registry(srv3.port)
        for (repo, tag), d in sorted(acked_tags.items()):
            self.assertEqual(reg.verify_image(repo, tag), d)
        reg.close()

    # -- the commit window, reproduced by hand --
    def cut_commit(self):
        """A session as a crash inside its commit leaves it: data moved into the blob store,
        session still there (with the 'committed' record berth writes before the move).
        Returns (registry client, upload path, data)."""
        root = self.path("cut-" + self._testMethodName, "root")
        os.makedirs(root)
        srv = self.start(root)
        reg = Registry(srv.port)
        self.addCleanup(reg.close)
        data = det_bytes("cut commit", 300000)
        loc = reg.start_upload("cut/repo")
        st, h, b = reg.request("PATCH", loc, data)
        self.assertEqual(st, 202, b)
        loc = reg.path_of(h["Location"])
        # What the commit does up to the move, done by hand while berth is stopped.
        self.assertEqual(srv.stop(), 0)
        v2 = os.path.join(root, "docker/registry/v2")
        uuid = loc.split("?")[0].rsplit("/", 1)[1]
        up = os.path.join(v2, "repositories/cut/repo/_uploads", uuid)
        hx = sha256(data)[7:]
        with open(os.path.join(up, "committed"), "w") as f:
            f.write(sha256(data))
        os.makedirs(os.path.join(v2, "blobs/sha256", hx[:2], hx))
        os.rename(os.path.join(up, "data"), os.path.join(v2, "blobs/sha256", hx[:2], hx, "data"))
        srv = self.start(root)
        return Registry(srv.port), loc, data

    def test_cut_commit_completes(self):
        reg, loc, data = self.cut_commit()
        self.addCleanup(reg.close)
        st, h, _ = reg.request("GET", loc)
        self.assertEqual((st, h.get("Range")), (204, "0-%d" % (len(data) - 1)))
        st, _, b = reg.request("PUT", reg.with_query(loc, digest=sha256(data)), b"")
        self.assertEqual(st, 201, b)
        self.assertEqual(reg.get_blob("cut/repo", sha256(data)), data)
        self.assertEqual(reg.request("GET", loc)[0], 404)

    def test_cut_commit_refuses_more_bytes(self):
        """A PATCH to a session whose data already became a blob cannot be satisfied: 416
        RANGE_INVALID with the session's Range (as for any PATCH that cannot be appended), not a
        500; the session stays usable for the PUT that completes it."""
        reg, loc, data = self.cut_commit()
        self.addCleanup(reg.close)
        st, h, b = reg.request("PATCH", loc, b"more", {"Content-Range": "%d-%d" % (len(data), len(data) + 3)})
        self.assertEqual(reg.request("GET", loc)[0], 204)
        self.assertEqual(st, 416, b)


if __name__ == "__main__":
    berthtest.main()
