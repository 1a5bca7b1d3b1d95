"""Notifications (notifications.endpoints): the events Distribution sends, field by field, for
blob and manifest pushes, pulls, mounts and deletes; ignore rules and headers; a sink that fails
then recovers gets every event in order; a slow sink does not slow pushes; with
notifications.queuedir, events pending when berth is SIGKILLed are delivered after restart; the
queue bound drops the oldest; per-endpoint metrics."""

import base64
import os
import re
import signal
import time

import berthtest as bt
from berthtest import tearDownModule  # noqa: F401
from notify_sink import Sink, unused_port

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def config(tmp, name, port, endpoints, extra="", debug_port=None, auth=""):
    eps = ""
    for e in endpoints:
        eps += "    - name: %s\n      url: %s\n      timeout: %s\n      threshold: %d\n" \
               "      backoff: %s\n%s" % (e["name"], e["url"], e.get("timeout", "2s"),
                                          e.get("threshold", 3), e.get("backoff", "200ms"),
                                          e.get("extra", ""))
    debug = ("  debug:\n    addr: 127.0.0.1:%d\n    prometheus:\n      enabled: true\n"
             "      path: /metrics\n" % debug_port) if debug_port else ""
    return bt.write_file("%s/%s.yml" % (tmp, name),
                         "version: 0.1\nlog:\n  level: info\n"
                         "storage:\n  filesystem:\n    rootdirectory: %s/%s-root\n"
                         "  delete:\n    enabled: true\n"
                         "http:\n  addr: 127.0.0.1:%d\n%s%s"
                         "notifications:\n%s  endpoints:\n%s"
                         % (tmp, name, port, debug, auth, extra, eps))


class Notifications(bt.OpsTestCase):
    def start(self, name, endpoints, extra="", debug=False, auth=""):
        ports = {}

        def make(port):
            ports["debug"] = bt.free_port() if debug else None
            return ["serve", config(self.tmp, name, port, endpoints, extra, ports["debug"], auth)], {}
        s = self.spawn(make)
        if debug:
            self.assertTrue(bt.wait_until(lambda: bt.port_open(ports["debug"]), 5))
            s.debug = bt.Client("http://127.0.0.1:%d" % ports["debug"])
        return s

    def sink(self, **kw):
        s = Sink(**kw)
        self.addCleanup(s.close)
        return s

    def test_events_field_by_field(self):
        sink = self.sink()
        s = self.start("fields", [{"name": "hook", "url": sink.url}],
                       "  events:\n    includereferences: true\n")
        c = s.client()
        img = c.push_image("app/one", tag="v1", layers=1)
        self.assertStatus(c.get("/v2/app/one/manifests/v1", headers=bt.ACCEPT_ALL), 200)
        layer = img["layers"][0]
        self.assertStatus(c.get("/v2/app/one/blobs/%s" % layer["digest"]), 200)
        r = c.post("/v2/app/two/blobs/uploads/?mount=%s&from=app/one" % layer["digest"],
                   headers={"Content-Length": "0"})
        self.assertStatus(r, 201)
        self.assertStatus(c.delete("/v2/app/one/manifests/v1"), 202)
        self.assertStatus(c.delete("/v2/app/one/manifests/%s" % img["digest"]), 202)
        self.assertStatus(c.delete("/v2/app/one/blobs/%s" % layer["digest"]), 202)
        ev = sink.wait_events(9)
        got = [(e["action"], e["target"].get("digest", ""), e["target"].get("tag")) for e in ev]
        config_d = bt.digest(img["config"])
        self.assertEqual(got, [
            ("push", config_d, None), ("push", layer["digest"], None),
            ("push", img["digest"], "v1"), ("pull", img["digest"], "v1"),
            ("pull", layer["digest"], None), ("mount", layer["digest"], None),
            ("delete", "", "v1"), ("delete", img["digest"], None),
            ("delete", layer["digest"], None)], ev)
        headers = sink.posts[0][0]
        self.assertEqual(headers["Content-Type"], "application/vnd.docker.distribution.events.v1+json")
        base = "http://127.0.0.1:%d" % s.port
        ids = set()
        for e in ev:
            self.assertRegex(e["id"], UUID)
            ids.add(e["id"])
            self.assertRegex(e["timestamp"], STAMP)
            self.assertEqual(e["target"]["repository"], "app/two" if e["action"] == "mount" else "app/one")
            self.assertRegex(e["request"]["id"], r".+")
            self.assertRegex(e["request"]["addr"], r"^127\.0\.0\.1:\d+$")
            self.assertEqual(e["request"]["host"], "127.0.0.1:%d" % s.port)
            self.assertIn("useragent", e["request"])
            self.assertEqual(e["actor"], {})
            self.assertRegex(e["source"]["addr"], r":%d$" % s.port)
            self.assertRegex(e["source"]["instanceID"], UUID)
        self.assertEqual(len(ids), len(ev))
        self.assertEqual(len({e["source"]["instanceID"] for e in ev}), 1)
        push = ev[2]
        self.assertEqual(push["request"]["method"], "PUT")
        self.assertEqual(push["target"]["mediaType"], bt.OCI_MANIFEST)
        self.assertEqual(push["target"]["size"], len(img["manifest"]))
        self.assertEqual(push["target"]["length"], len(img["manifest"]))
        self.assertEqual(push["target"]["url"], "%s/v2/app/one/manifests/%s" % (base, img["digest"]))
        self.assertEqual([d["digest"] for d in push["target"]["references"]],
                         [config_d, layer["digest"]])
        blob = ev[1]
        self.assertEqual(blob["target"]["mediaType"], "application/octet-stream")
        self.assertEqual(blob["target"]["size"], layer["size"])
        self.assertEqual(blob["target"]["length"], layer["size"])
        self.assertEqual(blob["target"]["url"], "%s/v2/app/one/blobs/%s" % (base, layer["digest"]))
        self.assertEqual(ev[4]["request"]["method"], "GET")
        mount = ev[5]
        self.assertEqual(mount["target"]["fromRepository"], "app/one")
        self.assertEqual(mount["target"]["url"], "%s/v2/app/two/blobs/%s" % (base, layer["digest"]))
        tagdel = ev[6]
        self.assertEqual(tagdel["request"]["method"], "DELETE")
        self.assertEqual(tagdel["target"], {"repository": "app/one", "tag": "v1"})
        self.assertEqual(ev[7]["target"], {"digest": img["digest"], "repository": "app/one"})

    def test_ignore_rules_and_headers(self):
        sink = self.sink()
        s = self.start("ignore", [{"name": "hook", "url": sink.url, "extra":
                                   "      headers:\n        Authorization: [Bearer sekrit]\n"
                                   "        X-Two: [a, b]\n"
                                   "      ignoredmediatypes: [application/octet-stream]\n"
                                   "      ignore:\n        actions: [pull]\n"}])
        c = s.client()
        img = c.push_image("ign/x", tag="t", layers=2)
        c.get("/v2/ign/x/manifests/t", headers=bt.ACCEPT_ALL)
        self.assertStatus(c.delete("/v2/ign/x/manifests/%s" % img["digest"]), 202)
        ev = sink.wait_events(3)
        time.sleep(0.5)
        ev = sink.events()
        # the delete by digest also untags "t": a tag delete event, as Distribution's
        self.assertEqual([(e["action"], e["target"].get("digest", ""), e["target"].get("tag")) for e in ev],
                         [("push", img["digest"], "t"), ("delete", img["digest"], None),
                          ("delete", "", "t")])
        self.assertNotIn("references", ev[0]["target"])  # includereferences is false by default
        self.assertEqual(ev[2]["target"], {"repository": "ign/x", "tag": "t"})
        h = sink.posts[0][0]
        self.assertEqual(h["Authorization"], "Bearer sekrit")
        self.assertEqual(h.get_all("X-Two"), ["a", "b"])

    def test_failing_sink_then_recovers_gets_every_event_in_order(self):
        sink = self.sink()
        sink.fail = 7
        s = self.start("recover", [{"name": "hook", "url": sink.url, "threshold": 2,
                                    "backoff": "300ms"}], debug=True)
        c = s.client()
        digests = [c.push_blob("rec/x", b"blob %d" % i) for i in range(5)]
        ev = sink.wait_events(5, timeout=20)
        self.assertEqual([e["target"]["digest"] for e in ev], digests)
        self.assertGreaterEqual(sink.attempts, 12)
        # the sink records an event before berth reads its answer: wait for the count
        done = 'berth_notifications_events_total{endpoint="hook",type="successes"} 5'
        m = bt.wait_until(lambda: (lambda t: t if done in t else None)(s.debug.get("/metrics").body.decode()), 5)
        self.assertIsNotNone(m, s.debug.get("/metrics").body.decode())
        self.assertIn('berth_notifications_events_total{endpoint="hook",type="failures"} 7', m)
        self.assertIn('berth_notifications_status_total{endpoint="hook",code="500"} 7', m)
        self.assertIn('berth_notifications_pending{endpoint="hook"} 0', m)

    def test_each_endpoint_has_its_own_queue(self):
        down = "http://127.0.0.1:%d/events" % unused_port()
        sink = self.sink()
        qdir = os.path.dirname(self.path("two-queues", "x"))
        s = self.start("two", [{"name": "down", "url": down, "threshold": 1, "backoff": "60s"},
                               {"name": "up", "url": sink.url}], "  queuedir: %s\n" % qdir, debug=True)
        c = s.client()
        digests = [c.push_blob("two/x", b"two %d" % i) for i in range(3)]
        ev = sink.wait_events(3)
        self.assertEqual([e["target"]["digest"] for e in ev], digests)
        m = s.debug.get("/metrics").body.decode()
        self.assertIn('berth_notifications_pending{endpoint="down"} 3', m)
        self.assertEqual(sorted(os.listdir(qdir)), ["down.0.log", "down.ack", "up.0.log", "up.ack"])

    def test_threshold_then_backoff(self):
        # Distribution's breaker: retries at once until `threshold` failures in a row, then one
        # try per `backoff`
        sink = self.sink()
        sink.fail = 4
        s = self.start("breaker", [{"name": "hook", "url": sink.url, "threshold": 2, "backoff": "1s"}])
        s.client().push_blob("brk/x", b"breaker")
        self.assertEqual(len(sink.wait_events(1, timeout=10)), 1)
        t = sink.times
        self.assertEqual(len(t), 5)
        self.assertLess(t[1] - t[0], 0.8)         # second try at once
        for i in (2, 3, 4):                       # then a backoff before each
            self.assertGreater(t[i] - t[i - 1], 0.9, t)
        sink2 = self.sink()
        sink2.fail = 4
        s2 = self.start("breaker10", [{"name": "hook", "url": sink2.url, "threshold": 10, "backoff": "1s"}])
        s2.client().push_blob("brk/y", b"breaker")
        self.assertEqual(len(sink2.wait_events(1, timeout=10)), 1)
        self.assertLess(sink2.times[-1] - sink2.times[0], 2.0, sink2.times)  # not 4 backoffs

    def test_timeout_counts_as_an_error_and_is_retried(self):
        sink = self.sink()
        sink.delay = 3
        s = self.start("timeout", [{"name": "hook", "url": sink.url, "timeout": "500ms",
                                    "threshold": 1, "backoff": "200ms"}], debug=True)
        d = s.client().push_blob("tmo/x", b"timeout")
        errors = 'berth_notifications_events_total{endpoint="hook",type="errors"} '
        self.assertTrue(bt.wait_until(lambda: errors + "0" not in s.debug.get("/metrics").body.decode(), 5))
        sink.delay = 0
        ev = sink.wait_events(1, timeout=10)
        # (an attempt berth gave up on may still land: at least once)
        self.assertEqual({e["target"]["digest"] for e in ev}, {d})

    def test_slow_sink_does_not_slow_pushes(self):
        sink = self.sink()
        sink.delay = 10
        s = self.start("slow", [{"name": "hook", "url": sink.url, "timeout": "30s"}])
        c = s.client()
        t0 = time.time()
        for i in range(6):
            c.push_blob("slow/x", b"slow blob %d" % i)
        self.assertLess(time.time() - t0, 3.0)
        # nor stopping: the delivery under way is abandoned (the event stays queued)
        self.assertTrue(bt.wait_until(lambda: sink.attempts >= 1, 5))
        t0 = time.time()
        self.assertEqual(s.stop(signal.SIGTERM, timeout=10), 0, s.log())
        self.assertLess(time.time() - t0, 3.0)

    def test_sigkill_with_pending_events_delivers_after_restart(self):
        port = unused_port()  # nothing listens yet: every delivery fails
        qdir = self.path("kill-queue", "x")
        qdir = os.path.dirname(qdir)
        eps = [{"name": "hook", "url": "http://127.0.0.1:%d/events" % port, "threshold": 1,
                "backoff": "100ms"}]
        extra = "  queuedir: %s\n" % qdir
        s = self.start("kill", eps, extra)
        c = s.client()
        digests = [c.push_blob("kill/x", b"kill blob %d" % i) for i in range(4)]
        os.kill(s.proc.pid, signal.SIGKILL)
        s.wait(5)
        sink = self.sink(port=port)
        s2 = self.start("kill", eps, extra)
        ev = sink.wait_events(4, timeout=15)
        self.assertEqual([e["target"]["digest"] for e in ev], digests, s2.log())
        self.assertTrue(s2.wait_log("4 events pending", 5), s2.log())

    def test_queue_bound_drops_oldest(self):
        port = unused_port()
        eps = [{"name": "hook", "url": "http://127.0.0.1:%d/events" % port, "threshold": 1,
                "backoff": "60s"}]
        qdir = os.path.dirname(self.path("bound-queue", "x"))
        s = self.start("bound", eps, "  queuedir: %s\n  queuemaxbytes: 4096\n" % qdir, debug=True)
        c = s.client()
        digests = [c.push_blob("bound/x", b"bound blob %d" % i) for i in range(12)]
        self.assertTrue(s.wait_log("is full", 5), s.log())
        m = s.debug.get("/metrics").body.decode()
        dropped = int(re.search(r'type="dropped"\} (\d+)', m).group(1))
        pending = int(re.search(r'berth_notifications_pending\{endpoint="hook"\} (\d+)', m).group(1))
        self.assertGreater(dropped, 0)
        self.assertEqual(dropped + pending, 12)
        os.kill(s.proc.pid, signal.SIGKILL)
        s.wait(5)
        sink = self.sink(port=port)
        eps[0]["backoff"] = "100ms"
        self.start("bound", eps, "  queuedir: %s\n  queuemaxbytes: 4096\n" % qdir)
        ev = sink.wait_events(pending, timeout=15)
        self.assertEqual([e["target"]["digest"] for e in ev], digests[dropped:])

    def test_actor_is_the_authenticated_user(self):
        sink = self.sink()
        htpasswd = os.path.join(bt.SRC, "tests", "fixtures", "auth", "htpasswd")
        s = self.start("actor", [{"name": "hook", "url": sink.url}],
                       extra="", auth="auth:\n  htpasswd:\n    realm: r\n    path: %s\n" % htpasswd)
        c = s.client()
        auth = {"Authorization": "Basic " + base64.b64encode(b"alice:alice-pw").decode()}
        data = b"alice's blob"
        r = c.post("/v2/who/x/blobs/uploads/", headers=dict(auth, **{"Content-Length": "0"}))
        self.assertStatus(r, 202)
        r = c.put(c.resolve(r.header("Location"), {"digest": bt.digest(data)}), data, headers=auth)
        self.assertStatus(r, 201)
        ev = sink.wait_events(1)
        self.assertEqual(ev[0]["actor"], {"name": "alice"})

    def test_disabled_endpoint_and_bad_url(self):
        sink = self.sink()
        s = self.start("disabled", [{"name": "off", "url": sink.url, "extra": "      disabled: true\n"}])
        s.client().push_blob("off/x", b"nothing sent")
        time.sleep(0.5)
        self.assertEqual(sink.events(), [])
        path = config(self.tmp, "badurl", bt.free_port(), [{"name": "bad", "url": "ftp://x/"}])
        r = bt.run_berth(["serve", path])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("url must be an http or https URL", r.stdout + r.stderr)


if __name__ == "__main__":
    bt.main()
