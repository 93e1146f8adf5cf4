"""A stand-in for the COCO download host, on 127.0.0.1 only, that misbehaves on purpose.

Serves, from one annotation file and its image folder, the paths of the official host:
  /annotations/annotations_trainval2017.zip   (holds annotations/instances_<split>.json)
  /<split>/<file_name>                         (each image, as the JSON's coco_url names it)
  /zips/<split>.zip                            (all images under <split>/)
with HEAD, Content-Length, Last-Modified, ETag and single byte ranges (206). Faults, by request
number so runs repeat: every --fail-every'th request gets a 500, every --truncate-every'th sends
half its body and drops the connection, and every response waits --delay seconds. One line per
request goes to --log.

A copy of ../shared/acceptance/coco_server.py (CI runs from a clean clone), formatted, with
--corrupt-zip, --rate, --trickle and --gate added.
usage: coco_server.py --ann ANN --images DIR --split val2017 --port-file F [--log F] [faults]"""

import argparse
import hashlib
import http.server
import io
import os
import threading
import time
import zipfile

ap = argparse.ArgumentParser()
ap.add_argument("--ann", required=True)
ap.add_argument("--images", required=True)
ap.add_argument("--split", default="val2017")
ap.add_argument("--port-file", required=True)
ap.add_argument("--log", default=os.devnull)
ap.add_argument("--fail-every", type=int, default=0)
ap.add_argument("--truncate-every", type=int, default=0)
ap.add_argument("--delay", type=float, default=0.0)
# added for the project's tests: the annotation zip served with one byte of its data flipped
ap.add_argument("--corrupt-zip", action="store_true")
# added for bench/bench_download.py: each connection's bandwidth, bytes per second (0: no limit)
ap.add_argument("--rate", type=float, default=0.0)
# added for the per-file deadline: every body sent one byte at a time, this many seconds apart (a
# host that is never silent for a read timeout, yet never finishes)
ap.add_argument("--trickle", type=float, default=0.0)
# added for tests that watch progress: every image request after the first waits until this file
# exists, so a test sees the download mid-way however fast the machine is
ap.add_argument("--gate", default="")
a = ap.parse_args()


def zipped(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, path in entries:
            z.write(path, name)
    return buf.getvalue()


names = sorted(os.listdir(a.images))
files = {
    "/annotations/annotations_trainval2017.zip": zipped(
        [(f"annotations/instances_{a.split}.json", a.ann)]
    )
}
if a.corrupt_zip:
    z = bytearray(files["/annotations/annotations_trainval2017.zip"])
    z[len(z) // 2] ^= 0xFF
    files["/annotations/annotations_trainval2017.zip"] = bytes(z)
files[f"/zips/{a.split}.zip"] = zipped(
    [(f"{a.split}/{n}", os.path.join(a.images, n)) for n in names]
)
for n in names:
    files[f"/{a.split}/{n}"] = open(os.path.join(a.images, n), "rb").read()
started = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() - 86400))
lock, count, images_seen = threading.Lock(), [0], [0]
log = open(a.log, "a", buffering=1)


def send(out, data: bytes) -> None:
    """Write ``data``, at most --rate bytes per second when set, one byte per --trickle seconds
    when that is set."""
    if a.trickle:
        for i in range(len(data)):
            out.write(data[i : i + 1])
            time.sleep(a.trickle)
        return
    step = 1 << 16
    for i in range(0, len(data), step if a.rate else max(1, len(data))):
        out.write(data[i : i + step] if a.rate else data)
        if a.rate:
            time.sleep(min(step, len(data) - i) / a.rate)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def serve(self, head):
        with lock:
            count[0] += 1
            n = count[0]
        time.sleep(a.delay)
        path = self.path.split("?")[0]
        if a.gate and path.startswith(f"/{a.split}/"):
            with lock:
                images_seen[0] += 1
                first = images_seen[0] == 1
            while not first and not os.path.exists(a.gate):
                time.sleep(0.05)
        body = files.get(path)
        if body is None:
            log.write(f"{n} {self.command} {path} 404 0\n")
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if a.fail_every and n % a.fail_every == 0:
            log.write(f"{n} {self.command} {path} 500 0\n")
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, status = 0, 200
        rng = self.headers.get("Range", "")
        if rng.startswith("bytes=") and "-" in rng and "," not in rng:
            lo, hi = rng[6:].split("-", 1)
            if lo.isdigit() and int(lo) < len(body):
                start, status = int(lo), 206
                end = min(int(hi), len(body) - 1) if hi.isdigit() else len(body) - 1
            else:
                log.write(f"{n} {self.command} {path} 416 0\n")
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        else:
            end = len(body) - 1
        part = body[start : end + 1]
        self.send_response(status)
        self.send_header("Content-Length", str(len(part)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", started)
        self.send_header("ETag", f'"{hashlib.sha1(body).hexdigest()[:16]}"')
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
        self.end_headers()
        if head:
            log.write(f"{n} HEAD {path} {status} 0\n")
            return
        if a.truncate_every and n % a.truncate_every == 0 and len(part) > 1:
            self.wfile.write(part[: len(part) // 2])
            self.wfile.flush()
            log.write(f"{n} GET {path} TRUNCATED {len(part) // 2}\n")
            self.close_connection = True
            return
        send(self.wfile, part)
        log.write(f"{n} GET {path} {status} {len(part)}\n")

    def do_GET(self):
        self.serve(False)

    def do_HEAD(self):
        self.serve(True)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(a.port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.replace(a.port_file + ".tmp", a.port_file)
try:
    srv.serve_forever()
except KeyboardInterrupt:
    pass
