#!/usr/bin/env python3
"""TLS keys honoured, with Python's ssl module as the client: http.tls.minimumtls refuses older
clients, http.tls.ciphersuites limits TLS 1.2 to the suites listed, http.tls.clientauth (Distribution
3's four values) decides what a client certificate must be, and SIGHUP re-reads the certificate
and key without dropping a connection. Start-up refusals name the key."""
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import berthtest as bt


class TlsKeysTest(bt.OpsTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not shutil.which("openssl"):
            raise bt.unittest.SkipTest("openssl is not installed")
        cls.certs = cls.make_certs()

    @classmethod
    def openssl(cls, *args):
        r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, cwd=cls.tmp)
        if r.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr))

    @classmethod
    def make_cert(cls, name, ca, cn, ext=None):
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        if ca is None:
            cls.openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=" + cn,
                        "-keyout", name + ".key", "-out", name + ".crt")
            return
        cls.openssl("req", *ec, "-subj", "/CN=" + cn, "-keyout", name + ".key", "-out", name + ".csr")
        extra = []
        if ext:
            bt.write_file(os.path.join(cls.tmp, name + ".ext"), ext)
            extra = ["-extfile", name + ".ext"]
        cls.openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
                    "-CAcreateserial", "-days", "2", "-out", name + ".crt", *extra)

    @classmethod
    def make_certs(cls):
        san = "subjectAltName=IP:127.0.0.1\n"
        cls.make_cert("ca", None, "berth tls test CA")
        cls.make_cert("server", "ca", "first", san)
        cls.make_cert("server2", "ca", "second", san)
        cls.make_cert("clientca", None, "berth tls test client CA")
        cls.make_cert("client", "clientca", "good client")
        cls.make_cert("rogue", "ca", "rogue client")
        return {n: os.path.join(cls.tmp, n) for n in ("ca", "server", "server2", "clientca", "client", "rogue")}

    def config(self, port, tls_extra="", name="config.yml"):
        cert_dir = self.path("live-%d" % port, "x")
        live = os.path.dirname(cert_dir)
        shutil.copy(self.certs["server"] + ".crt", os.path.join(live, "fullchain.pem"))
        shutil.copy(self.certs["server"] + ".key", os.path.join(live, "privkey.pem"))
        text = ("version: 0.1\nstorage:\n  inmemory:\nhttp:\n  addr: 127.0.0.1:%d\n  tls:\n"
                "    certificate: %s/fullchain.pem\n    key: %s/privkey.pem\n%s"
                % (port, live, live, tls_extra))
        return bt.write_file(self.path("%d-%s" % (port, name)), text), live

    def start(self, tls_extra=""):
        box = {}

        def make(port):
            box["config"], box["live"] = self.config(port, tls_extra)
            return ["serve", box["config"]], {}
        s = self.spawn(make)
        return s, box["live"]

    def context(self, cert=None, **kw):
        ctx = ssl.create_default_context(cafile=self.certs["ca"] + ".crt")
        if cert:
            ctx.load_cert_chain(self.certs[cert] + ".crt", self.certs[cert] + ".key")
        for k, v in kw.items():
            setattr(ctx, k, v)
        return ctx

    def get(self, port, ctx, path="/v2/"):
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def handshake(self, port, ctx):
        """The TLS version and cipher of a handshake, or the ssl error."""
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            try:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as t:
                    return t.version(), t.cipher()[0], t.getpeercert()
            except (ssl.SSLError, ConnectionError) as e:
                return e

    def test_minimumtls_tls13_refuses_tls12(self):
        s, _ = self.start("    minimumtls: tls1.3\n")
        r = self.handshake(s.port, self.context(maximum_version=ssl.TLSVersion.TLSv1_2))
        self.assertIsInstance(r, Exception, "a TLS 1.2 client was served: %s" % (r,))
        r = self.handshake(s.port, self.context())
        self.assertEqual(r[0], "TLSv1.3", r)

    def test_minimumtls_default_serves_tls12(self):
        s, _ = self.start()
        r = self.handshake(s.port, self.context(maximum_version=ssl.TLSVersion.TLSv1_2))
        self.assertEqual(r[0], "TLSv1.2", r)
        # Distribution's default suites: ECDHE with AES-GCM or ChaCha20 only, no CBC
        ctx = self.context(maximum_version=ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA")
        self.assertIsInstance(self.handshake(s.port, ctx), Exception)

    def test_ciphersuites_limit_tls12(self):
        s, _ = self.start("    ciphersuites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n")
        ctx = self.context(maximum_version=ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
        self.assertIsInstance(self.handshake(s.port, ctx), Exception, "a suite not listed was used")
        ctx = self.context(maximum_version=ssl.TLSVersion.TLSv1_2)
        r = self.handshake(s.port, ctx)
        self.assertEqual(r[:2], ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384"), r)
        self.assertEqual(self.get(s.port, ctx)[0], 200)

    def refused(self, tls_extra, needle):
        port = bt.free_port()
        path, _ = self.config(port, tls_extra, "refused.yml")
        r = bt.run_berth(["serve", path])
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out)
        self.assertIn(needle, out)
        return out

    def test_bad_tls_values_are_refused_at_start(self):
        self.refused("    ciphersuites: [TLS_NOT_A_SUITE]\n",
                     "http.tls.ciphersuites: unknown TLS cipher suite 'TLS_NOT_A_SUITE'")
        # GnuTLS would pair RSA key exchange with the ECDHE suite's cipher: refused, not widened
        self.refused("    ciphersuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_256_CBC_SHA]\n",
                     "http.tls.ciphersuites: the TLS library cannot enable this list without also enabling")
        self.refused("    minimumtls: tls9\n", "http.tls.minimumtls: expected one of")
        self.refused("    clientauth: verify-client-cert-if-given\n",
                     "http.tls.clientauth: refused without http.tls.clientcas")
        self.refused("    clientauth: maybe\n", "http.tls.clientauth: expected one of")
        out = self.refused("    letsencrypt:\n      cachefile: /tmp/le\n      hosts: [example.com]\n",
                           "http.tls.letsencrypt: refused:")
        self.assertIn("certbot", out)
        # files that cannot be used say why
        missing = os.path.join(self.tmp, "missing.pem")
        port = bt.free_port()
        for cert, key, why in ((missing, self.certs["server"] + ".key",
                                "cannot read http.tls.certificate '%s': No such file or directory" % missing),
                               (self.certs["server"] + ".crt", self.tmp,
                                "cannot read http.tls.key '%s': Is a directory" % self.tmp),
                               (self.certs["server"] + ".crt", self.certs["server2"] + ".key",
                                "is not the key of http.tls.certificate")):
            cfg = bt.write_file(self.path("files.yml"), "version: 0.1\nstorage:\n  inmemory:\nhttp:\n"
                                "  addr: 127.0.0.1:%d\n  tls:\n    certificate: %s\n    key: %s\n"
                                % (port, cert, key))
            r = bt.run_berth(["serve", cfg])
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(why, r.stdout + r.stderr)

    def clientauth_answers(self, mode):
        """(no certificate, a certificate from the client CA, one from another CA) -> statuses."""
        extra = "    clientcas: [%s.crt]\n" % self.certs["clientca"]
        if mode:
            extra += "    clientauth: %s\n" % mode
        s, _ = self.start(extra)

        def status(cert):
            try:
                return self.get(s.port, self.context(cert))[0]
            except (ssl.SSLError, ConnectionError) as e:
                return "tls error: %s" % e
        return status(None), status("client"), status("rogue")

    def test_clientauth_values(self):
        self.assertEqual(self.clientauth_answers(None), (401, 200, 401))
        self.assertEqual(self.clientauth_answers("require-and-verify-client-cert"), (401, 200, 401))
        self.assertEqual(self.clientauth_answers("verify-client-cert-if-given"), (200, 200, 401))
        self.assertEqual(self.clientauth_answers("require-any-client-cert"), (401, 200, 200))
        self.assertEqual(self.clientauth_answers("request-client-cert"), (200, 200, 200))

    def test_sighup_reloads_certificate_without_dropping_connections(self):
        s, live = self.start()
        ctx = self.context()
        self.assertEqual(self.handshake(s.port, ctx)[2]["subject"], ((("commonName", "first"),),))
        # a keep-alive connection opened before the reload
        kept = http.client.HTTPSConnection("127.0.0.1", s.port, context=ctx, timeout=10)
        kept.request("GET", "/v2/")
        r = kept.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        # certbot's deploy hook: new files in place, then SIGHUP
        for src, dst in (("server2.crt", "fullchain.pem"), ("server2.key", "privkey.pem")):
            tmp = os.path.join(live, dst + ".new")
            shutil.copy(os.path.join(self.tmp, src), tmp)
            os.rename(tmp, os.path.join(live, dst))
        s.proc.send_signal(signal.SIGHUP)
        cn = bt.wait_until(lambda: self.handshake(s.port, ctx)[2]["subject"] == ((("commonName", "second"),),))
        self.assertTrue(cn, "the new certificate is not served:\n" + s.describe())
        self.assertIn("TLS certificate reloaded", s.log())
        # the old connection still works, on its old session
        kept.request("GET", "/v2/")
        r = kept.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        kept.close()
        # a broken pair is not taken: the second certificate stays, berth keeps serving
        bt.write_file(os.path.join(live, "privkey.pem"), "not a key\n")
        s.proc.send_signal(signal.SIGHUP)
        self.assertTrue(bt.wait_until(lambda: "not reloaded" in s.log()), s.describe())
        self.assertEqual(self.handshake(s.port, ctx)[2]["subject"], ((("commonName", "second"),),))
        self.assertTrue(s.alive())


if __name__ == "__main__":
    bt.main()
