"""Blob uploads: POST (end-4a/4b), PATCH (end-5), PUT (end-6), GET status (end-13),
DELETE (end-14) and cross-repository mounts (end-11). Every step follows the Location of the
previous response, resolved against the server when it is relative."""

import hashlib
import threading
import urllib.parse

import berthtest
from berthtest import digest, reference_deviation, setUpModule, tearDownModule  # noqa: F401

OCTET = {"Content-Type": "application/octet-stream"}
DATA = b"".join(b"chunk-%04d|" % i for i in range(300))  # 3300 bytes


def hdrs(**kw):
    h = dict(OCTET)
    for k, v in kw.items():
        h[k.replace("_", "-")] = v
    return h


class UploadTestCase(berthtest.TestCase):
    def loc(self, r, extra=None):
        """The next request path: the response's Location, resolved."""
        loc = self.assertHeader(r, "Location")
        return self.c.resolve(loc, extra)

    def start(self, repo):
        r = self.c.post("/v2/%s/blobs/uploads/" % repo, headers={"Content-Length": "0"})
        self.assertStatus(r, 202)
        return r

    def assertBlob(self, repo, d, data):
        r = self.c.get("/v2/%s/blobs/%s" % (repo, d))
        self.assertStatus(r, 200, "blob %s should be readable" % d)
        self.assertTrue(r.body == data, "stored blob differs from what was uploaded (%d vs %d bytes)"
                        % (len(r.body), len(data)) + r.describe(100))

    def assertCreated(self, r, repo, d):
        """201 with a pullable Location (spec MUST) and Docker-Content-Digest."""
        self.assertStatus(r, 201)
        path = self.loc(r)
        self.assertEqual(urllib.parse.urlsplit(path).path, "/v2/%s/blobs/%s" % (repo, d),
                         "Location of the created blob" + r.describe())
        self.assertHeader(r, "Docker-Content-Digest", d)
        self.assertStatus(self.c.head(path), 200, "Location %s is not pullable" % path)


class StartUploadTest(UploadTestCase):
    def test_post_202_location_uuid_range(self):
        repo = self.repo()
        r = self.start(repo)  # spec MUST 202 + Location
        loc = self.assertHeader(r, "Location")
        path = urllib.parse.urlsplit(self.c.resolve(loc)).path
        self.assertTrue(path.startswith("/v2/%s/blobs/uploads/" % repo), r.describe())
        # Distribution sends Docker-Upload-UUID (the id in the Location) and Range: follow it
        uuid = self.assertHeader(r, "Docker-Upload-UUID")
        self.assertIn(uuid, path, "Docker-Upload-UUID not in the Location" + r.describe())
        self.assertRegex(self.assertHeader(r, "Range"), r"^0-\d+$")

    def test_sessions_are_distinct(self):
        repo = self.repo()
        a = self.loc(self.start(repo))
        b = self.loc(self.start(repo))
        self.assertNotEqual(urllib.parse.urlsplit(a).path, urllib.parse.urlsplit(b).path)

    def test_get_status_of_new_upload(self):
        repo = self.repo()
        r = self.c.get(self.loc(self.start(repo)))
        self.assertStatus(r, 204)  # spec end-13 MUST 204 + Location + Range
        self.assertHeader(r, "Location")
        self.assertRegex(self.assertHeader(r, "Range"), r"^0-\d+$")
        self.assertNoBody(r)


class MonolithicTest(UploadTestCase):
    def test_post_then_put(self):
        repo = self.repo()
        d = digest(DATA)
        r = self.start(repo)
        r = self.c.put(self.loc(r, {"digest": d}), DATA, headers=OCTET)
        self.assertCreated(r, repo, d)  # spec MUST 201 + Location
        self.assertBlob(repo, d, DATA)

    def test_put_empty_blob(self):
        repo = self.repo()
        d = digest(b"")
        r = self.c.put(self.loc(self.start(repo), {"digest": d}), b"", headers=OCTET)
        self.assertCreated(r, repo, d)
        self.assertBlob(repo, d, b"")

    @reference_deviation("2.8 has no single-POST upload: it answers 202 and ignores the body")
    def test_single_post_with_digest_201(self):
        repo = self.repo()
        data = b"single POST monolithic upload"
        d = digest(data)
        r = self.c.post("/v2/%s/blobs/uploads/?digest=%s" % (repo, d), data, headers=OCTET)
        # spec: MAY support (201) else SHOULD 202; the brief requires berth to support it
        self.assertCreated(r, repo, d)
        self.assertBlob(repo, d, data)

    @reference_deviation("2.8 ignores the body of POST ?digest= (202)")
    def test_single_post_wrong_digest_400(self):
        repo = self.repo()
        wrong = digest(b"other")
        r = self.c.post("/v2/%s/blobs/uploads/?digest=%s" % (repo, wrong), b"payload", headers=OCTET)
        # spec: <digest> MUST match the blob; Distribution's code for a mismatch is DIGEST_INVALID
        self.assertError(r, 400, "DIGEST_INVALID")
        self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (repo, wrong)), 404)
        self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (repo, digest(b"payload"))), 404)

    def test_put_wrong_digest_400_not_stored(self):
        repo = self.repo()
        wrong = digest(b"not the content")
        r = self.c.put(self.loc(self.start(repo), {"digest": wrong}), DATA, headers=OCTET)
        self.assertError(r, 400, "DIGEST_INVALID")  # code-4
        self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (repo, wrong)), 404)
        self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (repo, digest(DATA))), 404)

    def test_put_without_digest_400(self):
        repo = self.repo()
        r = self.c.put(self.loc(self.start(repo)), DATA, headers=OCTET)
        # spec: the closing PUT MUST include the digest; Distribution: 400 DIGEST_INVALID
        self.assertError(r, 400, "DIGEST_INVALID")
        self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (repo, digest(DATA))), 404)

    def test_put_malformed_digest_400(self):
        repo = self.repo()
        r = self.c.put(self.loc(self.start(repo), {"digest": "sha256:nothex"}), DATA, headers=OCTET)
        self.assertError(r, 400, "DIGEST_INVALID")  # Distribution


class ChunkedTest(UploadTestCase):
    def test_chunked_upload_with_final_chunk_in_put(self):
        repo = self.repo()
        d = digest(DATA)
        r = self.start(repo)
        r = self.c.patch(self.loc(r), DATA[:1000], headers=hdrs(Content_Range="0-999"))
        self.assertStatus(r, 202)  # spec MUST 202 + Location + Range
        self.assertHeader(r, "Range", "0-999")
        r = self.c.patch(self.loc(r), DATA[1000:2000], headers=hdrs(Content_Range="1000-1999"))
        self.assertStatus(r, 202)
        self.assertHeader(r, "Range", "0-1999")
        s = self.c.get(self.loc(r))
        self.assertStatus(s, 204)  # end-13
        self.assertHeader(s, "Range", "0-1999")
        self.assertHeader(s, "Location")
        r = self.c.put(self.loc(s, {"digest": d}), DATA[2000:],
                       headers=hdrs(Content_Range="2000-%d" % (len(DATA) - 1)))
        self.assertCreated(r, repo, d)
        self.assertBlob(repo, d, DATA)

    def test_chunked_upload_then_empty_put(self):
        repo = self.repo()
        d = digest(DATA)
        r = self.start(repo)
        for start in range(0, len(DATA), 1100):
            chunk = DATA[start:start + 1100]
            r = self.c.patch(self.loc(r), chunk,
                             headers=hdrs(Content_Range="%d-%d" % (start, start + len(chunk) - 1)))
            self.assertStatus(r, 202)
            self.assertHeader(r, "Range", "0-%d" % (start + len(chunk) - 1))
        r = self.c.put(self.loc(r, {"digest": d}), b"", headers={"Content-Length": "0"})
        self.assertCreated(r, repo, d)
        self.assertBlob(repo, d, DATA)

    def test_many_chunks_back_to_back(self):
        # clients send the next chunk as soon as the previous 202 arrives: each must succeed
        repo = self.repo()
        data = DATA * 2
        d = digest(data)
        r = self.start(repo)
        step = 110
        for start in range(0, len(data), step):
            chunk = data[start:start + step]
            end = start + len(chunk) - 1
            r = self.c.patch(self.loc(r), chunk, headers=hdrs(Content_Range="%d-%d" % (start, end)))
            self.assertStatus(r, 202, "chunk %d-%d sent right after the previous 202" % (start, end))
            self.assertHeader(r, "Range", "0-%d" % end)
        r = self.c.put(self.loc(r, {"digest": d}), b"")
        self.assertCreated(r, repo, d)
        self.assertBlob(repo, d, data)

    def test_large_upload_in_odd_chunks(self):
        # past 1 MiB berth streams to disk with direct writes from aligned blocks: chunks of odd
        # sizes at odd offsets, a status check between them and a large final PUT body must
        # still store every byte in order
        repo = self.repo()
        data = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(220000))  # ~6.7 MB
        d = digest(data)
        r = self.start(repo)
        start = 0
        for size in (700001, 1048576, 2000003, 4096, 1234567):
            end = start + size - 1
            r = self.c.patch(self.loc(r), data[start:end + 1], headers=hdrs(Content_Range="%d-%d" % (start, end)))
            self.assertStatus(r, 202, "chunk %d-%d" % (start, end))
            self.assertHeader(r, "Range", "0-%d" % end)
            start = end + 1
            s = self.c.get(self.loc(r))
            self.assertStatus(s, 204)
            self.assertHeader(s, "Range", "0-%d" % end)
        r = self.c.put(self.loc(r, {"digest": d}), data[start:],
                       headers=hdrs(Content_Range="%d-%d" % (start, len(data) - 1)))
        self.assertCreated(r, repo, d)
        self.assertBlob(repo, d, data)

    def test_many_streamed_patches_back_to_back(self):
        repo = self.repo()
        data = DATA
        r = self.start(repo)
        for start in range(0, len(data), 100):
            r = self.c.patch(self.loc(r), data[start:start + 100], headers=OCTET)
            self.assertStatus(r, 202, "streamed PATCH at offset %d" % start)
        r = self.c.put(self.loc(r, {"digest": digest(data)}), b"")
        self.assertCreated(r, repo, digest(data))

    @reference_deviation("2.8 ignores Content-Range and appends an out-of-order chunk (202)")
    def test_first_chunk_not_at_zero_416(self):
        repo = self.repo()
        r = self.start(repo)
        r = self.c.patch(self.loc(r), DATA[10:20], headers=hdrs(Content_Range="10-19"))
        self.assertStatus(r, 416)  # spec MUST 416 (conformance: out-of-order chunk)

    @reference_deviation("2.8 ignores Content-Range (gaps and repeats are appended)")
    def test_out_of_order_and_repeated_chunks_416_session_survives(self):
        repo = self.repo()
        d = digest(DATA)
        r = self.start(repo)
        r = self.c.patch(self.loc(r), DATA[:1000], headers=hdrs(Content_Range="0-999"))
        self.assertStatus(r, 202)
        here = self.loc(r)
        # a gap
        g = self.c.patch(here, DATA[1500:2000], headers=hdrs(Content_Range="1500-1999"))
        self.assertStatus(g, 416, "chunk leaving a gap")  # spec MUST 416
        # the same chunk again
        g = self.c.patch(here, DATA[:1000], headers=hdrs(Content_Range="0-999"))
        self.assertStatus(g, 416, "repeated chunk")  # spec MUST 416 (conformance: retry chunk)
        # overlapping the end
        g = self.c.patch(here, DATA[500:1500], headers=hdrs(Content_Range="500-1499"))
        self.assertStatus(g, 416, "overlapping chunk")
        # spec: a GET gives the current offset and location after a 416
        s = self.c.get(here)
        self.assertStatus(s, 204)
        self.assertHeader(s, "Range", "0-999")
        r = self.c.patch(self.loc(s), DATA[1000:], headers=hdrs(
            Content_Range="1000-%d" % (len(DATA) - 1)))
        self.assertStatus(r, 202, "a correct chunk after 416s must still be accepted")
        self.assertHeader(r, "Range", "0-%d" % (len(DATA) - 1))
        r = self.c.put(self.loc(r, {"digest": d}), b"")
        self.assertCreated(r, repo, d)
        self.assertBlob(repo, d, DATA)

    def test_streamed_patch_without_content_range(self):
        # conformance "Blob Upload Streamed": PATCH without Content-Range appends
        repo = self.repo()
        d = digest(DATA)
        r = self.start(repo)
        r = self.c.patch(self.loc(r), DATA[:2000], headers=OCTET)
        self.assertStatus(r, 202)
        self.assertHeader(r, "Range", "0-1999")
        r = self.c.patch(self.loc(r), DATA[2000:], headers=OCTET)
        self.assertStatus(r, 202)
        self.assertHeader(r, "Range", "0-%d" % (len(DATA) - 1))
        r = self.c.put(self.loc(r, {"digest": d}), b"")
        self.assertCreated(r, repo, d)
        self.assertBlob(repo, d, DATA)

    def test_streamed_patch_chunked_transfer_encoding(self):
        repo = self.repo()
        data = DATA * 30  # ~100 KB
        d = digest(data)
        r = self.start(repo)
        pieces = [data[i:i + 7000] for i in range(0, len(data), 7000)]
        r = self.c.patch(self.loc(r), iter(pieces), headers=OCTET, chunked=True)
        self.assertStatus(r, 202)
        self.assertHeader(r, "Range", "0-%d" % (len(data) - 1))
        r = self.c.put(self.loc(r, {"digest": d}), b"")
        self.assertCreated(r, repo, d)
        self.assertBlob(repo, d, data)

    def test_content_range_with_chunked_transfer_encoding(self):
        repo = self.repo()
        d = digest(DATA)
        r = self.start(repo)
        r = self.c.patch(self.loc(r), iter([DATA[:500], DATA[500:1000]]), chunked=True,
                         headers=hdrs(Content_Range="0-999"))
        self.assertStatus(r, 202)
        self.assertHeader(r, "Range", "0-999")
        r = self.c.put(self.loc(r, {"digest": d}), DATA[1000:],
                       headers=hdrs(Content_Range="1000-%d" % (len(DATA) - 1)))
        self.assertCreated(r, repo, d)
        self.assertBlob(repo, d, DATA)

    def test_expect_100_continue(self):
        # curl and some SDKs send Expect: 100-continue with larger bodies
        repo = self.repo()
        data = DATA * 400  # 1.3 MB
        d = digest(data)
        r = self.c.put(self.loc(self.start(repo), {"digest": d}), data,
                       headers=hdrs(Expect="100-continue"))
        self.assertCreated(r, repo, d)
        self.assertBlob(repo, d, data)

    def test_put_with_chunked_transfer_encoding(self):
        repo = self.repo()
        d = digest(DATA)
        r = self.start(repo)
        r = self.c.put(self.loc(r, {"digest": d}), iter([DATA[:100], DATA[100:]]), headers=OCTET,
                       chunked=True)
        self.assertCreated(r, repo, d)
        self.assertBlob(repo, d, DATA)

    def test_wrong_digest_after_chunks_not_stored(self):
        repo = self.repo()
        r = self.start(repo)
        r = self.c.patch(self.loc(r), DATA, headers=hdrs(Content_Range="0-%d" % (len(DATA) - 1)))
        self.assertStatus(r, 202)
        wrong = digest(DATA + b"x")
        r = self.c.put(self.loc(r, {"digest": wrong}), b"")
        self.assertError(r, 400, "DIGEST_INVALID")
        self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (repo, wrong)), 404)
        self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (repo, digest(DATA))), 404)


class SessionTest(UploadTestCase):
    def test_delete_upload_204_then_404(self):
        repo = self.repo()
        r = self.start(repo)
        r = self.c.patch(self.loc(r), DATA[:10], headers=OCTET)
        self.assertStatus(r, 202)
        here = self.loc(r)
        r = self.c.delete(here)
        self.assertStatus(r, 204)  # spec SHOULD 204; Distribution 204
        self.assertError(self.c.get(here), 404, "BLOB_UPLOAD_UNKNOWN")
        self.assertError(self.c.patch(here, b"more", headers=OCTET), 404, "BLOB_UPLOAD_UNKNOWN")
        self.assertError(self.c.put(urllib.parse.urlsplit(here).path + "?digest=" + digest(DATA[:10]),
                                    b""), 404, ("BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"))
        self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (repo, digest(DATA[:10]))), 404)

    def test_upload_gone_after_completion(self):
        repo = self.repo()
        d = digest(b"done")
        r = self.start(repo)
        here = self.loc(r)
        self.assertStatus(self.c.put(self.c.resolve(r.header("Location"), {"digest": d}), b"done"), 201)
        self.assertStatus(self.c.get(here), 404)  # the session is over

    @reference_deviation("2.8 answers BLOB_UPLOAD_INVALID for an id it cannot decode")
    def test_unknown_upload_id_404(self):
        repo = self.repo()
        self.c.push_blob(repo, b"make the repository exist")
        fake = "/v2/%s/blobs/uploads/%s" % (repo, "0badc0de-0000-4000-8000-000000000000")
        # spec code-3 BLOB_UPLOAD_UNKNOWN: "blob upload unknown to registry"
        self.assertError(self.c.get(fake), 404, "BLOB_UPLOAD_UNKNOWN")
        self.assertError(self.c.patch(fake, b"x", headers=OCTET), 404, "BLOB_UPLOAD_UNKNOWN")
        self.assertError(self.c.put(fake + "?digest=" + digest(b"x"), b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
        self.assertError(self.c.delete(fake), 404, "BLOB_UPLOAD_UNKNOWN")
        self.assertError(self.c.get("/v2/%s/blobs/uploads/notanid" % repo), 404, "BLOB_UPLOAD_UNKNOWN")

    def test_upload_id_of_other_repo_404(self):
        a, b = self.repo(), self.repo()
        self.c.push_blob(b, b"b exists")
        r = self.start(a)
        loc_a = self.loc(r)
        u = urllib.parse.urlsplit(loc_a)
        self.assertTrue(u.path.startswith("/v2/%s/blobs/uploads/" % a))
        in_b = u.path.replace("/v2/%s/" % a, "/v2/%s/" % b, 1) + ("?" + u.query if u.query else "")
        # an upload belongs to its repository; Distribution: 404 BLOB_UPLOAD_INVALID
        self.assertError(self.c.get(in_b), 404, ("BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"))
        self.assertError(self.c.patch(in_b, b"xx", headers=OCTET), 404,
                         ("BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"))
        in_b_put = self.c.resolve(in_b, {"digest": digest(b"xx")})
        self.assertError(self.c.put(in_b_put, b"xx"), 404, ("BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"))
        self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (b, digest(b"xx"))), 404)
        # the session still works in its own repository
        d = digest(b"in a")
        r = self.c.put(self.c.resolve(loc_a, {"digest": d}), b"in a")
        self.assertCreated(r, a, d)
        self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (b, d)), 404)

    def test_concurrent_uploads(self):
        repo = self.repo()
        n = 8
        results = [None] * n
        blobs = [(b"concurrent blob %d " % i) * (5000 + i) for i in range(n)]

        def work(i):
            try:
                c = self.srv.client()
                r = c.post("/v2/%s/blobs/uploads/" % repo)
                if r.status != 202:
                    results[i] = r.describe()
                    return
                data = blobs[i]
                half = len(data) // 2
                r = c.patch(c.resolve(r.header("Location")), data[:half],
                            headers=hdrs(Content_Range="0-%d" % (half - 1)))
                if r.status != 202:
                    results[i] = r.describe()
                    return
                r = c.put(c.resolve(r.header("Location"), {"digest": digest(data)}), data[half:],
                          headers=hdrs(Content_Range="%d-%d" % (half, len(data) - 1)))
                results[i] = "ok" if r.status == 201 else r.describe()
            except Exception as e:  # reported below
                results[i] = repr(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        bad = [res for res in results if res != "ok"]
        self.assertFalse(bad, "concurrent uploads failed:\n" + "\n".join(map(str, bad)))
        for data in blobs:
            self.assertBlob(repo, digest(data), data)

    def test_same_blob_uploaded_twice(self):
        repo = self.repo()
        d = self.c.push_blob(repo, DATA)
        d2 = self.c.push_blob(repo, DATA)
        self.assertEqual(d, d2)
        self.assertBlob(repo, d, DATA)


class MountTest(UploadTestCase):
    def test_mount_from_repo_with_blob_201(self):
        src, dst = self.repo(), self.repo()
        data = b"blob to be mounted"
        d = self.c.push_blob(src, data)
        r = self.c.post("/v2/%s/blobs/uploads/?mount=%s&from=%s" % (dst, d, src))
        self.assertCreated(r, dst, d)  # spec MUST 201 + Location on a successful mount
        self.assertBlob(dst, d, data)
        self.assertBlob(src, d, data)

    def test_mount_from_repo_without_blob_202(self):
        src, dst = self.repo(), self.repo()
        data = b"exists only in a third repository"
        d = self.c.push_blob(self.repo(), data)
        self.c.push_blob(src, b"src exists but lacks the blob")
        r = self.c.post("/v2/%s/blobs/uploads/?mount=%s&from=%s" % (dst, d, src))
        # spec SHOULD 202 (an upload session) when the registry cannot mount
        self.assertStatus(r, 202)
        self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (dst, d)), 404)
        # the session is a normal upload
        r = self.c.put(self.loc(r, {"digest": d}), data, headers=OCTET)
        self.assertCreated(r, dst, d)

    def test_mount_into_repo_that_has_it(self):
        src, dst = self.repo(), self.repo()
        data = b"already in both"
        d = self.c.push_blob(src, data)
        self.c.push_blob(dst, data)
        r = self.c.post("/v2/%s/blobs/uploads/?mount=%s&from=%s" % (dst, d, src))
        self.assertCreated(r, dst, d)

    def test_mount_from_unknown_repo_202(self):
        dst = self.repo()
        d = self.c.push_blob(self.repo(), b"mount from a repository that does not exist")
        r = self.c.post("/v2/%s/blobs/uploads/?mount=%s&from=%s" % (dst, d, self.repo("nosuch")))
        self.assertStatus(r, 202)
        self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (dst, d)), 404)

    @reference_deviation("2.8 ignores a mount without from and opens an upload (202)")
    def test_mount_without_from_blob_known_201(self):
        dst = self.repo()
        data = b"mountable from anywhere"
        d = self.c.push_blob(self.repo(), data)
        r = self.c.post("/v2/%s/blobs/uploads/?mount=%s" % (dst, d))
        # spec MAY treat from as optional; the brief: 201 when the blob exists anywhere
        self.assertCreated(r, dst, d)
        self.assertBlob(dst, d, data)

    def test_mount_without_from_unknown_blob_202(self):
        dst = self.repo()
        r = self.c.post("/v2/%s/blobs/uploads/?mount=%s" % (dst, digest(b"nowhere at all")))
        self.assertStatus(r, 202)  # conformance: cross-mount without from yields a session
        self.assertHeader(r, "Location")

    @reference_deviation("2.8 links only the canonical sha256 digest into the target repository")
    def test_mount_sha512_blob(self):
        src, dst = self.repo(), self.repo()
        data = b"sha512 mount"
        d = self.c.push_blob(src, data, alg="sha512")
        r = self.c.post("/v2/%s/blobs/uploads/?mount=%s&from=%s" % (dst, d, src))
        self.assertStatus(r, 201)
        r = self.c.get("/v2/%s/blobs/%s" % (dst, d))
        self.assertStatus(r, 200)
        self.assertEqual(r.body, data)


if __name__ == "__main__":
    berthtest.main()
