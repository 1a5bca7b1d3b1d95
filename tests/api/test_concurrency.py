"""Concurrency: many clients doing the same thing at once end in one consistent state, and
pullers never see partial data while the content they read is being pushed again.

  - the same blob pushed by many clients at once (every upload style, one repository and
    several): every push succeeds, the blob downloads intact, fsck is clean;
  - different large blobs pushed at once, more than there are direct-write streams, in every
    upload style and odd chunk sizes: each downloads intact, fsck is clean;
  - the same tag pushed by many clients at once, each with its own manifest: every push
    succeeds, the tag then names one of the pushed manifests, which pulls complete; fsck clean;
  - pullers looping over GETs of a blob being re-pushed (and unlinked and pushed again) and of
    a tag being overwritten always get a complete body hashing to its digest (or, for the
    unlinked blob, a clean 404), never a short or mixed one;
  - many clients PATCHing the same upload session with the same offset: one wins, the others
    are refused with 416, and the committed blob is exactly one client's bytes;
  - clients alternating PUT and DELETE of one tag (and DELETE by digest): every PUT answers 201
    and every DELETE 202 or 404, as Distribution's do, never a 5xx nor MANIFEST_BLOB_UNKNOWN;
    the tag then resolves or is absent, and fsck is clean;
  - clients deleting a blob while others upload it (POST then PUT ?digest=, and one-request
    POST ?digest=): every upload answers 201, every DELETE 202 or 404.
Each class runs its own berth (with --delete) on its own root; fsck runs on it when idle.
"""

import os
import threading

import berthtest
from berthtest import setUpModule, tearDownModule  # noqa: F401
from hardening_lib import (Registry, SharedBerth, assert_fsck, berth_serve_args, det_bytes, image,
                           push_image, sha256)

CLIENTS = int(os.environ.get("CONCURRENCY_CLIENTS", "16"))


def run_threads(n, fn):
    """Runs fn(i) in n threads released together; returns the exceptions raised, by index."""
    barrier = threading.Barrier(n)
    errors = {}

    def body(i):
        try:
            barrier.wait(timeout=10)
            fn(i)
        except BaseException as e:  # noqa: B902 - reported by the caller
            errors[i] = e

    ts = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    if any(t.is_alive() for t in ts):
        errors[-1] = RuntimeError("a client thread is stuck")
    return errors


class ConcurrencyTest(SharedBerth, berthtest.OpsTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = os.path.join(cls.tmp, "root")
        os.makedirs(cls.root)
        cls.srv = berthtest.spawn_berth(
            lambda port: (berth_serve_args(cls.root, port, "--delete"), {}), cls.tmp)

    def reg(self):
        r = Registry(self.srv.port)
        self.addCleanup(r.close)
        return r

    def check_errors(self, errors):
        if errors:
            self.fail("%d clients failed:\n%s" % (len(errors), "\n".join(
                "  client %s: %r" % (i, e) for i, e in sorted(errors.items()))))

    def fsck_clean(self):
        # Blobs pushed without a manifest (the blob tests share the root) are orphans: garbage
        # for garbage-collect, not damage.
        assert_fsck(self, self.root, ("orphan-blob",))

    def test_same_blob_many_clients(self):
        data = det_bytes("same blob", 1536 * 1024 + 7)
        d = sha256(data)
        modes = ("mono", "post-put", "chunked", "stream")

        def push(i):
            reg = Registry(self.srv.port)
            repo = "conc/blob" if i % 2 else "conc/blob-%d" % (i % 4)
            got = reg.push_blob(repo, data, modes[i % len(modes)], chunk=256 * 1024)
            if got != d:
                raise AssertionError("pushed %s, got %s" % (d, got))
            reg.get_blob(repo, d)
            reg.close()

        self.check_errors(run_threads(CLIENTS, push))
        reg = self.reg()
        for repo in ["conc/blob"] + ["conc/blob-%d" % k for k in (0, 2)]:
            self.assertEqual(reg.get_blob(repo, d), data)
        # The blobs are linked but no manifest names them: orphans (garbage-collect deletes
        # them), and nothing else, no debris.
        problems = assert_fsck(self, self.root, ("orphan-blob",))
        self.assertIn(d.split(":")[1], " ".join(p for _, p, _ in problems))

    def test_different_large_blobs_many_clients(self):
        # Past 1 MiB uploads stream to disk with direct writes, at most one stream per core:
        # the rest go through the page cache. Every client's bytes must land intact either way,
        # whatever the upload style and however odd the chunk sizes.
        modes = ("mono", "post-put", "chunked", "stream")
        blobs = [det_bytes("large %d" % i, 5 * 1024 * 1024 + 4099 * i) for i in range(8)]

        def push(i):
            reg = Registry(self.srv.port)
            repo = "conc/large-%d" % i
            got = reg.push_blob(repo, blobs[i], modes[i % len(modes)], chunk=700001 + 4096 * i)
            if got != sha256(blobs[i]):
                raise AssertionError("pushed %s, got %s" % (sha256(blobs[i]), got))
            if reg.get_blob(repo, got) != blobs[i]:
                raise AssertionError("blob %d reads back different" % i)
            reg.close()

        self.check_errors(run_threads(len(blobs), push))
        assert_fsck(self, self.root, ("orphan-blob",))  # blobs without a manifest

    def test_same_tag_many_clients(self):
        repo, tag = "conc/tag", "contested"
        shared = [det_bytes("tag shared %d" % k, 200 * 1024) for k in range(3)]
        images = [image("client %d" % i, shared=shared, unique_size=1000 + i) for i in range(CLIENTS)]
        digests = {sha256(m) for _, _, m in images}
        # the blobs first (so that the manifest puts race each other, not the uploads)...
        reg = self.reg()
        for config, layers, _ in images:
            reg.push_blob(repo, config)
            for l in layers:
                reg.push_blob(repo, l)

        # ...then every client puts its manifest on the same tag at once, twice.
        def put(i):
            r = Registry(self.srv.port)
            for _ in range(2):
                got = r.put_manifest(repo, tag, images[i][2])
                if got != sha256(images[i][2]):
                    raise AssertionError("PUT answered %s" % got)
            r.close()

        self.check_errors(run_threads(CLIENTS, put))
        winner = reg.verify_image(repo, tag)
        self.assertIn(winner, digests)
        self.assertEqual(reg.tags(repo), [tag])
        # every pushed manifest is there by digest, and the tag's history names them all
        for d in digests:
            reg.verify_image(repo, d)
        idx = os.path.join(self.root, "docker/registry/v2/repositories", repo,
                           "_manifests/tags", tag, "index/sha256")
        self.assertEqual(sorted("sha256:" + h for h in os.listdir(idx)), sorted(digests))
        with open(os.path.join(self.root, "docker/registry/v2/repositories", repo,
                               "_manifests/tags", tag, "current/link")) as f:
            self.assertEqual(f.read(), winner)
        self.fsck_clean()

    def test_pulls_during_repush_never_partial(self):
        repo = "conc/pull"
        big = det_bytes("re-pushed blob", 3 * 1024 * 1024 + 11)
        shared = [big]
        images = [image("overwrite %d" % i, shared=shared, unique_size=50000 + i) for i in range(4)]
        reg = self.reg()
        for config, layers, manifest in images:
            push_image(reg, repo, "moving", config, layers, manifest)
        side = det_bytes("unlinked and pushed again", 700 * 1024)
        reg.push_blob(repo, side)
        manifests = {sha256(m): m for _, _, m in images}
        stop = threading.Event()
        stats = {"blob": 0, "side": 0, "side404": 0, "tag": 0, "pushes": 0}
        lock = threading.Lock()

        def pusher(i):
            r = Registry(self.srv.port)
            k = 0
            while not stop.is_set():
                config, layers, manifest = images[(i + k) % len(images)]
                k += 1
                r.push_blob(repo, big, ("mono", "chunked", "stream", "post-put")[k % 4],
                            chunk=1024 * 1024)
                r.put_manifest(repo, "moving", manifest)
                if i == 0:
                    st, _, b = r.request("DELETE", "/v2/%s/blobs/%s" % (repo, sha256(side)))
                    if st not in (202, 404):
                        raise AssertionError("DELETE blob: %d %r" % (st, b))
                    r.push_blob(repo, side, "chunked", chunk=100 * 1024)
                with lock:
                    stats["pushes"] += 1
            r.close()

        def puller(i):
            r = Registry(self.srv.port)
            while not stop.is_set():
                b = r.get_blob(repo, sha256(big))  # checks the hash
                if len(b) != len(big):
                    raise AssertionError("short blob")
                m = r.get_manifest(repo, "moving")  # checks body against its digest header
                if manifests.get(sha256(m)) != m:
                    raise AssertionError("tag names a manifest nobody pushed: %s" % sha256(m))
                st, h, body = r.request("GET", "/v2/%s/blobs/%s" % (repo, sha256(side)))
                if st == 200:
                    if sha256(body) != sha256(side):
                        raise AssertionError("side blob: %d bytes hashing wrong" % len(body))
                    key = "side"
                elif st == 404:
                    key = "side404"
                else:
                    raise AssertionError("side blob: status %d %r" % (st, body[:200]))
                # a ranged read in the middle of the blob is exact too
                st, h, part = r.request("GET", "/v2/%s/blobs/%s" % (repo, sha256(big)),
                                        headers={"Range": "bytes=1000000-1999999"})
                if st != 206 or part != big[1000000:2000000]:
                    raise AssertionError("ranged GET: %d, %d bytes" % (st, len(part)))
                with lock:
                    stats["blob"] += 1
                    stats["tag"] += 1
                    stats[key] += 1
            r.close()

        def guarded(i):
            try:
                (pusher if i < 3 else puller)(i)
            except BaseException:
                stop.set()  # one failure ends the run: report it, not a pile-up
                raise

        timer = threading.Timer(float(os.environ.get("CONCURRENCY_SECONDS", "4")), stop.set)
        timer.start()
        errors = run_threads(9, guarded)
        timer.cancel()
        print("stats: %s" % stats)
        self.check_errors(errors)
        self.assertGreater(stats["pushes"], 0)
        self.assertGreater(stats["blob"], 0)
        self.fsck_clean()

    def test_same_upload_session_many_patchers(self):
        repo = "conc/session"
        reg = self.reg()
        loc = reg.start_upload(repo)
        bodies = [det_bytes("patcher %d" % i, 300 * 1024) for i in range(CLIENTS)]
        results = {}

        def patch(i):
            r = Registry(self.srv.port)
            st, h, b = r.request("PATCH", loc, bodies[i], {"Content-Type": "application/octet-stream",
                                                           "Content-Range": "0-%d" % (len(bodies[i]) - 1)})
            results[i] = st
            r.close()

        self.check_errors(run_threads(CLIENTS, patch))
        won = [i for i, st in results.items() if st == 202]
        self.assertEqual(len(won), 1, "statuses: %s" % results)
        self.assertEqual(sorted(st for st in results.values() if st != 202), [416] * (CLIENTS - 1))
        st, h, _ = reg.request("GET", loc)
        self.assertEqual((st, h.get("Range")), (204, "0-%d" % (300 * 1024 - 1)))
        data = bodies[won[0]]
        st, h, b = reg.request("PUT", reg.with_query(loc, digest=sha256(data)), b"")
        self.assertEqual(st, 201, b)
        self.assertEqual(reg.get_blob(repo, sha256(data)), data)
        # (the blob is linked, unreferenced by any manifest: not an orphan either)
        self.fsck_clean()

    def race(self, n, rounds, ops):
        """n clients each run `rounds` steps, client i doing ops[(i + k) % len(ops)] at step k;
        an op returns (what, status, body) and the expected statuses. The unexpected answers."""
        wrong = []

        def client(i):
            r = Registry(self.srv.port)
            for k in range(rounds):
                what, st, b, allowed = ops[(i + k) % len(ops)](r)
                if st not in allowed:
                    wrong.append("%s answered %d %r" % (what, st, b[:200]))
            r.close()

        self.check_errors(run_threads(n, client))
        return wrong

    def test_tag_put_delete_race(self):
        repo, tag = "conc/putdel", "latest"
        config, layers, man = image("put-delete race", unique_size=1500)
        reg = self.reg()
        for blob in [config] + layers:
            reg.push_blob(repo, blob)
        d = sha256(man)

        def put(r):
            st, _, b = r.request("PUT", "/v2/%s/manifests/%s" % (repo, tag), man,
                                 {"Content-Type": berthtest.OCI_MANIFEST})
            return "PUT", st, b, (201,)

        def delete_tag(r):
            st, _, b = r.request("DELETE", "/v2/%s/manifests/%s" % (repo, tag))
            return "DELETE tag", st, b, (202, 404)

        def delete_digest(r):
            st, _, b = r.request("DELETE", "/v2/%s/manifests/%s" % (repo, d))
            return "DELETE digest", st, b, (202, 404)

        wrong = self.race(8, 60, [put, delete_tag, put, delete_tag, put, delete_digest])
        self.assertEqual(wrong, [], "%d unexpected answers:\n%s" % (len(wrong), "\n".join(wrong[:20])))
        # one consistent end state: the tag resolves (and is listed) or is absent
        st, _, _ = reg.request("GET", "/v2/%s/manifests/%s" % (repo, tag), headers=berthtest.ACCEPT_ALL)
        self.assertIn(st, (200, 404))
        self.assertEqual(tag in reg.tags(repo), st == 200)
        self.assertEqual(reg.put_manifest(repo, tag, man), d)
        self.assertEqual(reg.verify_image(repo, tag), d)
        self.fsck_clean()

    def test_blob_delete_vs_upload_commit(self):
        repo = "conc/blobdel"
        blobs = [det_bytes("blob delete race %d" % k, 3000 + k) for k in range(2)]

        def upload(r):
            data = blobs[r.rounds % 2]
            r.rounds += 1
            loc = r.start_upload(repo)
            st, _, b = r.request("PUT", r.with_query(loc, digest=sha256(data)), data,
                                 {"Content-Type": "application/octet-stream"})
            return "PUT ?digest=", st, b, (201,)

        def upload_mono(r):
            data = blobs[r.rounds % 2]
            r.rounds += 1
            st, _, b = r.request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, sha256(data)),
                                 data, {"Content-Type": "application/octet-stream"})
            return "POST ?digest=", st, b, (201,)

        def delete(r):
            data = blobs[r.rounds % 2]
            r.rounds += 1
            st, _, b = r.request("DELETE", "/v2/%s/blobs/%s" % (repo, sha256(data)))
            return "DELETE blob", st, b, (202, 404)

        Registry.rounds = 0
        wrong = self.race(8, 60, [upload, delete, upload_mono, delete])
        self.assertEqual(wrong, [], "%d unexpected answers:\n%s" % (len(wrong), "\n".join(wrong[:20])))
        reg = self.reg()
        for data in blobs:
            reg.push_blob(repo, data)
            self.assertEqual(reg.get_blob(repo, sha256(data)), data)
        assert_fsck(self, self.root, ("orphan-blob",))


if __name__ == "__main__":
    berthtest.main()
