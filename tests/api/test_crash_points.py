"""Crash windows, hit deterministically: berth is run under `strace -e inject=SYSCALL:signal=KILL`
so that it dies exactly when a given system call touches a given path (the k-th time), for
every k, instead of at a random moment as in test_crash.py. After each kill berth restarts on
the same root and must be consistent:

  - an upload session killed at any point while its commit removes it answers either 404 (and
    then its blob is in place) or its full size (and a retried PUT ?digest= completes it):
    acknowledged bytes are never lost;
  - a manifest PUT killed at any point of its tag's write leaves the tag absent or whole: its
    current link is written before its index link, so neither berth nor docker-registry on the
    same root ever lists a tag that then answers 404, and fsck finds nothing to repair;
  - a DELETE by digest killed before the untagging leaves a tag naming a deleted manifest,
    which fsck reports (dangling-link) and repair removes.
Skipped when strace is not installed or cannot attach (ptrace not permitted).
"""

import os
import shutil
import signal
import subprocess
import time
import unittest

import berthtest
from berthtest import setUpModule, tearDownModule  # noqa: F401
from hardening_lib import Registry, berth_serve_args, det_bytes, fsck, image, push_image, sha256

V2 = "docker/registry/v2"


class KillAt:
    """strace attached to pid: SIGKILL when `syscall` touches `path` for the k-th time."""

    def __init__(self, tc, pid, path, syscall, k):
        self.out = os.path.join(tc.tmp, "strace-%d-%d.out" % (pid, k))
        self.proc = subprocess.Popen(
            ["strace", "-f", "-qq", "-p", str(pid), "-P", path, "-e", "trace=" + syscall,
             "-e", "inject=%s:signal=KILL:when=%d" % (syscall, k), "-o", self.out],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # strace attaches to every thread before it returns control: wait until it has.
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                with open("/proc/%d/status" % pid) as f:
                    if any(l.startswith("TracerPid:") and l.split()[1] != "0" for l in f):
                        break
            except OSError:
                break
            time.sleep(0.02)
        else:
            self.stop()
            raise unittest.SkipTest("strace could not attach to berth (ptrace not permitted?)")
        time.sleep(0.2)  # every thread of berth traced, not only the first

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class CrashPointTest(berthtest.OpsTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not shutil.which("strace"):
            raise unittest.SkipTest("strace is not installed")

    def start(self, root):
        return self.spawn(lambda port: (berth_serve_args(root, port, "--delete"), {}))

    def killed(self, srv):
        """True when berth died (by the injected SIGKILL)."""
        try:
            srv.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            return False
        return True

    def test_kill_during_session_removal(self):
        """k-th unlinkat in the session directory (committed record, hashstates, startedat,
        the directory itself): the session is whole or gone, never empty-but-alive."""
        wrong = []
        for dedupe in (False, True):
            for k in range(1, 8):
                root = self.path("sess-%d-%d" % (dedupe, k), "root")
                os.makedirs(root)
                srv = self.start(root)
                reg = Registry(srv.port)
                data = det_bytes("session %d" % k, 200000)
                if dedupe:  # the blob is in the store already: the commit moves nothing
                    reg.push_blob("cp/other", data)
                loc = reg.start_upload("cp/repo")
                st, h, b = reg.request("PATCH", loc, data)
                self.assertEqual(st, 202, b)
                loc = reg.path_of(h["Location"])
                uuid = loc.split("?")[0].rsplit("/", 1)[1]
                sdir = os.path.join(root, V2, "repositories/cp/repo/_uploads", uuid)
                ka = KillAt(self, srv.proc.pid, sdir, "unlinkat", k)
                try:
                    st, _, _ = reg.request("PUT", reg.with_query(loc, digest=sha256(data)), b"")
                except OSError:
                    st = None
                died = self.killed(srv)
                ka.stop()
                reg.close()
                if not died:
                    self.assertEqual(st, 201)
                    srv.stop()
                    break  # k is past the last unlinkat: every window was tried
                srv = self.start(root)
                reg = Registry(srv.port)
                st, h, b = reg.request("GET", loc)
                what = "killed at unlinkat #%d in the session dir%s" % (k, " (dedupe)" if dedupe else "")
                if st == 404:
                    reg.get_blob("cp/repo", sha256(data))
                elif (st, h.get("Range")) != (204, "0-%d" % (len(data) - 1)):
                    st2, _, b = reg.request("PUT", reg.with_query(loc, digest=sha256(data)), b"")
                    wrong.append("%s: GET answers %d Range %s (acknowledged: %d bytes); the "
                                 "retried PUT ?digest= answers %d %s"
                                 % (what, st, h.get("Range"), len(data), st2, b[:80]))
                else:
                    st, _, b = reg.request("PUT", reg.with_query(loc, digest=sha256(data)), b"")
                    self.assertEqual(st, 201, "%s: retried PUT: %r" % (what, b))
                    reg.get_blob("cp/repo", sha256(data))
                reg.close()
                srv.stop()
            else:
                self.fail("the session removal never completed")
        self.assertEqual(wrong, [], "sessions alive with their data gone:\n" + "\n".join(wrong))

    def push_base(self, reg, repo):
        cfg, layers, man = image("crash point", unique_size=5000)
        push_image(reg, repo, "base", cfg, layers, man)
        return cfg, layers, man

    def cut_tag_write(self, k):
        """Pushes an image as "base", then the same manifest as the new tag "cut" with berth
        killed at the k-th point of the tag's write (the tag's directory is made whole in a
        staging directory under _uploads and renamed into place, holding its current link; the
        index link is written after). Returns the root, or None when k is past the last point
        (berth was not killed)."""
        root = self.path("%s-tag-%d" % (self._testMethodName, k), "root")
        os.makedirs(root)
        srv = self.start(root)
        reg = Registry(srv.port)
        cfg, layers, man = self.push_base(reg, "cp/tag")
        self.man = man
        tags = os.path.join(root, V2, "repositories/cp/tag/_manifests/tags")
        cut = os.path.join(tags, "cut")
        index_dir = os.path.join(cut, "index/sha256", sha256(man)[7:])
        # (path, syscall, which call on it): strace matches a rename by its source path only,
        # so a link's arrival is caught at the open of its directory that syncs it.
        points = [(cut, "newfstatat", 1),        # does the tag exist?
                  (tags, "openat", 1),           # the directory with its current link is in place
                  (index_dir, "mkdir", 2),       # after the ENOENT of the first try
                  (index_dir, "openat", 1)]      # the index link is in place
        if k > len(points):
            srv.stop()
            return None
        path, syscall, when = points[k - 1]
        ka = KillAt(self, srv.proc.pid, path, syscall, when)
        try:
            reg.request("PUT", "/v2/cp/tag/manifests/cut", man, {"Content-Type": berthtest.OCI_MANIFEST})
        except OSError:
            pass
        died = self.killed(srv)
        ka.stop()
        reg.close()
        if not died:
            srv.stop()
            self.fail("berth was not killed at %s of %s" % (syscall, path))
        return root

    def test_kill_between_tag_links(self):
        """A tag is written as its current link, then its index link: a kill at any point leaves
        the tag absent or resolving (its index link may be missing, which nothing needs); fsck
        finds nothing, and the rest of the store is whole."""
        for k in range(1, 8):
            root = self.cut_tag_write(k)
            if root is None:
                break
            rc, problems, out = fsck(root)
            # at most the staging directory, left to upload purging
            self.assertEqual([p for p in problems if p[0] != "stale-upload"], [],
                             "killed at point #%d:\n%s" % (k, out))
            srv = self.start(root)
            reg = Registry(srv.port)
            self.assertEqual(reg.verify_image("cp/tag", "base"), sha256(self.man))
            st = reg.request("GET", "/v2/cp/tag/manifests/cut", headers=berthtest.ACCEPT_ALL)[0]
            listed = reg.tags("cp/tag")
            self.assertEqual(st, 200 if "cut" in listed else 404, "tags/list says %s" % listed)
            print("killed at point #%d: tags/list says %s, cut answers %d" % (k, listed, st))
            reg.close()
            srv.stop()
        else:
            self.fail("the tag write never completed")

    def test_tags_list_after_cut_tag_write(self):
        """A tag whose write was cut short is not listed, by berth nor by docker-registry
        (Distribution lists every tag directory) on the same root, unless it resolves."""
        registry = shutil.which("docker-registry")
        for k in range(1, 8):
            root = self.cut_tag_write(k)
            if root is None:
                break
            servers = [("berth", self.start(root).port)]
            if registry:
                servers.append(("docker-registry", self.start_reference(registry, root)))
            for kind, port in servers:
                reg = Registry(port)
                listed = reg.tags("cp/tag")
                st = reg.request("GET", "/v2/cp/tag/manifests/cut", headers=berthtest.ACCEPT_ALL)[0]
                reg.close()
                self.assertTrue("cut" not in listed or st == 200,
                                "killed at point #%d: %s's tags/list says %s, but cut answers %d"
                                % (k, kind, listed, st))

    def start_reference(self, binary, root):
        """docker-registry (Distribution 2.8) serving root; its port. Stopped with the test."""
        port = berthtest.free_port()
        cfg = berthtest.write_file(os.path.join(os.path.dirname(root), "reference.yml"),
                                   "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                                   "    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%d\n" % (root, port))
        proc = subprocess.Popen([binary, "serve", cfg], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop():
            proc.kill()
            proc.wait()
        self.addCleanup(stop)
        if not berthtest.wait_until(lambda: berthtest.port_open(port), 10):
            self.fail("docker-registry did not start on port %d" % port)
        return port

    def test_kill_during_delete_before_untag(self):
        """DELETE by digest removes the revision, then untags: a kill when it comes to the tag
        leaves the tag naming a deleted manifest (404), reported by fsck and removed by repair."""
        root = self.path("del", "root")
        os.makedirs(root)
        srv = self.start(root)
        reg = Registry(srv.port)
        cfg, layers, man = self.push_base(reg, "cp/del")
        self.assertEqual(reg.put_manifest("cp/del", "other", man), sha256(man))
        tagdir = os.path.join(root, V2, "repositories/cp/del/_manifests/tags/base")
        ka = KillAt(self, srv.proc.pid, tagdir, "openat", 1)
        try:
            reg.request("DELETE", "/v2/cp/del/manifests/%s" % sha256(man))
        except OSError:
            pass
        died = self.killed(srv)
        ka.stop()
        reg.close()
        self.assertTrue(died, "berth never got to the tag")
        rc, problems, out = fsck(root)
        kinds = sorted(k for k, _, _ in problems)
        # Both tags name the deleted manifest; its bytes, config and layer are garbage now (as
        # garbage-collect sees them: no revision references them), so orphans.
        self.assertEqual(kinds, ["dangling-link"] * 2 + ["orphan-blob"] * 3, out)
        srv = self.start(root)
        reg = Registry(srv.port)
        self.assertEqual(reg.request("GET", "/v2/cp/del/manifests/base")[0], 404)
        self.assertEqual(reg.request("GET", "/v2/cp/del/manifests/%s" % sha256(man))[0], 404)
        reg.close()
        srv.stop()
        fsck(root, repair=True)
        rc, problems, out = fsck(root)
        self.assertEqual(sorted(k for k, _, _ in problems), ["orphan-blob"] * 3, out)


if __name__ == "__main__":
    berthtest.main()
