"""The command line and the first hour (issue 14): help and exit statuses, flags on either side
of the configuration file, bad values that say what is valid, storage errors that say why (at
start-up and at run time), a TLS file or htpasswd path that cannot be read, the debug server's
address and the final "berth stopped" line."""

import os
import re
import signal
import subprocess

import berthtest
from berthtest import run_berth, setUpModule, tearDownModule, write_file  # noqa: F401
from hardening_lib import berth_serve_args


def mount_tmpfs(path, *opts):
    """Mounts a small tmpfs on path; None, or why it cannot be done here."""
    if os.geteuid() != 0:
        return "not running as root"
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(("size=1m",) + opts), "tmpfs", path],
                       capture_output=True, text=True)
    return None if p.returncode == 0 else "mount -t tmpfs failed: %s" % p.stderr.strip()


def tmpfs(test, name, *opts):
    """A small tmpfs mounted on a new directory of the test's class, unmounted when the test
    ends; the test is skipped when it cannot be mounted here."""
    mnt = os.path.dirname(test.path(name, "x"))
    why = mount_tmpfs(mnt, *opts)
    if why:
        test.skipTest("cannot mount a tmpfs (%s)" % why)
    test.addCleanup(subprocess.run, ["umount", "-l", mnt], capture_output=True)
    return mnt


class HelpAndUsageTest(berthtest.OpsTestCase):
    def test_serve_help(self):
        for flag in ("--help", "-h"):
            p = run_berth(["serve", flag])
            self.assertEqual(p.returncode, 0, flag + p.stderr)
            self.assertIn("--addr", p.stdout)
            self.assertIn("Exit status", p.stdout)
            self.assertEqual(p.stderr, "")
        # help wins wherever it stands, and loads nothing
        p = run_berth(["serve", "/nonexistent.yml", "--root", "/nonexistent", "-h"])
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_usage_errors_exit_2_in_every_command(self):
        cases = [
            ["serve", "--bogus"],
            ["serve", "--addr"],
            ["serve", "a.yml", "b.yml"],
            ["serve", "--storage", "s3"],
            ["garbage-collect", "--bogus", "x.yml"],
            ["garbage-collect"],
            ["fsck", "--bogus", "/nonexistent"],
            ["fsck"],
            ["no-such-command"],
            [],
        ]
        for args in cases:
            p = run_berth(args)
            self.assertEqual(p.returncode, 2, "%s: %s" % (args, p.stderr))
            self.assertTrue(p.stderr.strip(), "%s: nothing said" % args)

    def test_bad_value_names_the_valid_ones(self):
        cases = {
            "--storage": ("s3", "filesystem or inmemory"),
            "--log-level": ("loud", "debug, info, warn or error"),
            "--threads": ("many", "0 (one per core) to 1024"),
            "--max-connections": ("0", "1 to 1000000"),
            "--idle-timeout": ("-1", "0 (never) to 604800"),
            "--header-timeout": ("1e3", "0 (never) to 604800"),
        }
        for flag, (value, valid) in cases.items():
            for args in (["serve", flag, value], ["serve", "%s=%s" % (flag, value)]):
                p = run_berth(args)
                self.assertEqual(p.returncode, 2, "%s: %s" % (args, p.stderr))
                self.assertIn(valid, p.stderr, args)
                self.assertIn(value, p.stderr, args)

    def test_configuration_errors_exit_1(self):
        p = run_berth(["serve", os.path.join(self.tmp, "missing.yml")])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("no such file or directory", p.stderr.lower())


class FlagOrderTest(berthtest.OpsTestCase):
    def config(self, port, root):
        return write_file(self.path("cfg-%d.yml" % port),
                          "version: 0.1\nlog:\n  accesslog:\n    disabled: true\n"
                          "storage:\n  filesystem:\n    rootdirectory: %s\n"
                          "http:\n  addr: 127.0.0.1:1\n" % root)

    def test_flags_before_or_after_the_file(self):
        root = self.path("root")
        for order in ("before", "after", "both"):
            def make(port, order=order):
                cfg = self.config(port, root)
                addr = ["--addr=127.0.0.1:%d" % port]
                if order == "before":
                    return ["serve"] + addr + ["--delete", cfg], {}
                if order == "after":
                    return ["serve", cfg] + addr + ["--delete"], {}
                return ["serve", "--delete", cfg, "--addr", "127.0.0.1:%d" % port], {}
            s = self.spawn(make)
            c = s.client()
            repo = "order/" + order
            img = c.push_image(repo, "v1")
            # the flag (--delete) took effect whichever side of the file it stood
            self.assertStatus(c.delete("/v2/%s/manifests/%s" % (repo, img["digest"])), 202)


class StartupStorageTest(berthtest.OpsTestCase):
    def start_fails(self, root, *extra):
        p = run_berth(["serve", "--addr", "127.0.0.1:%d" % berthtest.free_port(), "--root", root]
                      + list(extra))
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        lines = [l for l in (p.stdout + p.stderr).splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "one start-up error line:\n" + "\n".join(lines))
        self.assertIn("cannot use storage root", lines[0])
        return lines[0]

    def test_root_that_is_a_file(self):
        f = write_file(self.path("plainfile"), "x")
        self.assertIn("not a directory", self.start_fails(f))
        self.assertIn("not a directory", self.start_fails(os.path.join(f, "below")))

    def test_root_without_permission_or_read_only(self):
        if os.geteuid() == 0:
            mnt = tmpfs(self, "ro", "ro")
            self.assertIn("read-only file system", self.start_fails(mnt))
            self.assertIn("read-only file system", self.start_fails(os.path.join(mnt, "sub")))
        else:
            mnt = os.path.dirname(self.path("ro", "x"))
            os.chmod(mnt, 0o555)
            self.addCleanup(os.chmod, mnt, 0o755)
            self.assertIn("permission denied", self.start_fails(mnt))
        # a read-only registry needs no write access: it starts
        if os.geteuid() == 0:
            cfg = write_file(self.path("ro.yml"),
                             "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\n"
                             "  maintenance:\n    readonly:\n      enabled: true\n" % mnt)
            s = self.spawn(lambda port: (["serve", cfg, "--addr", "127.0.0.1:%d" % port], {}))
            self.assertStatus(s.client().get("/v2/"), 200)

    def test_root_on_a_full_disk(self):
        mnt = tmpfs(self, "full")
        with open(os.path.join(mnt, "filler"), "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        self.assertIn("no space left on device", self.start_fails(mnt))

    def test_runtime_storage_error_says_why(self):
        mnt = tmpfs(self, "rt")
        s = self.spawn(lambda port: (berth_serve_args(mnt, port), {}))
        self.addCleanup(s.kill)  # before the unmount
        c = s.client()
        c.push_image("rt/before", "v1")
        p = subprocess.run(["mount", "-o", "remount,ro", mnt], capture_output=True, text=True)
        if p.returncode:
            self.skipTest("cannot remount read-only: " + p.stderr)
        r = c.post("/v2/rt/after/blobs/uploads/", b"")
        self.assertStatus(r, 500)
        line = s.wait_log(r"level=error.*read-only file system")
        self.assertTrue(line, "no reason in the log:\n" + s.log()[-2000:])


    def test_full_disk_during_a_large_upload_says_why(self):
        # past 64 KiB an upload's bytes are written from another thread (core/bodypipe.h):
        # the reason still reaches the request's log line
        mnt = tmpfs(self, "bigfull")
        s = self.spawn(lambda port: (berth_serve_args(mnt, port), {}))
        self.addCleanup(s.kill)  # before the unmount
        c = s.client()
        r = c.post("/v2/big/full/blobs/uploads/", b"")
        self.assertStatus(r, 202)
        r = c.patch(c.resolve(r.header("Location")), b"\1" * (3 << 20),
                    headers={"Content-Type": "application/octet-stream"})
        self.assertStatus(r, 507)
        line = s.wait_log(r"level=error.*no space left on device")
        self.assertTrue(line, "no reason in the log:\n" + s.log()[-2000:])


class StartupFilesTest(berthtest.OpsTestCase):
    def serve_config(self, text):
        cfg = write_file(self.path("c%d.yml" % len(os.listdir(self.tmp))), text)
        return run_berth(["serve", cfg])

    def test_tls_file_that_cannot_be_read(self):
        base = "version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  addr: 127.0.0.1:%d\n  tls:\n" \
               % berthtest.free_port()
        p = self.serve_config(base + "    certificate: %s\n    key: %s\n"
                              % (os.path.join(self.tmp, "none.pem"), os.path.join(self.tmp, "k")))
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("http.tls.certificate", p.stderr)
        self.assertIn("none.pem': no such file or directory", p.stderr.lower())
        p = self.serve_config(base + "    certificate: %s\n    key: %s\n" % (self.tmp, self.tmp))
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("is a directory", p.stderr.lower())

    def test_htpasswd_path_that_is_a_directory(self):
        # Debian's /etc/docker/registry/config.yml names /etc/docker/registry. docker-registry
        # starts and answers every request 400; berth starts, says so at once, and refuses
        # every request (401) until the path names a file.
        d = os.path.dirname(self.path("etc", "docker", "registry", "x"))

        def make(port):
            cfg = write_file(self.path("htdir-%d.yml" % port),
                             "version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  addr: 127.0.0.1:%d\n"
                             "auth:\n  htpasswd:\n    realm: basic-realm\n    path: %s\n" % (port, d))
            return ["serve", cfg], {}
        s = self.spawn(make)
        line = s.wait_log(r"level=error.*htpasswd %s is a directory" % re.escape(d))
        self.assertTrue(line, s.log())
        self.assertLess(s.log().index("is a directory"), s.log().index("listening"), s.log())
        self.assertStatus(s.client().get("/v2/"), 401)
        self.assertEqual(os.listdir(d), [], "nothing created in the directory")


class LifecycleLogTest(berthtest.OpsTestCase):
    def test_debug_address_and_stopped_line(self):
        dport = berthtest.free_port()

        def make(port):
            cfg = write_file(self.path("dbg-%d.yml" % port),
                             "version: 0.1\nstorage:\n  inmemory: {}\n"
                             "http:\n  addr: 127.0.0.1:%d\n  debug:\n    addr: 127.0.0.1:%d\n"
                             "    prometheus:\n      enabled: true\n      path: /metrics\n"
                             % (port, dport))
            return ["serve", cfg], {}
        s = self.spawn(make)
        self.assertTrue(s.wait_log(r"debug server listening on 127\.0\.0\.1:%d" % dport),
                        s.log())
        # systemctl reload sends SIGHUP (the unit's ExecReload): berth goes on serving
        s.send(signal.SIGHUP)
        self.assertTrue(s.wait_log(r"received SIGHUP"), s.log())
        self.assertTrue(s.alive(), s.log())
        self.assertStatus(s.client().get("/v2/"), 200)
        self.assertEqual(s.stop(), 0)
        self.assertIn('msg="berth stopped"', s.log_lines()[-1])


if __name__ == "__main__":
    berthtest.main()
