"""Download rate of ``download coco`` from the local stand-in host (tests/coco/coco_server.py)
serving coco-tiny's val2017 (80 images, 12 MB), with and without injected faults, in one run;
and, for the choice between them, the split's zip (one stream, then extraction) against one
request per image.

    python bench/bench_download.py [--delay 0.05] [--rate BYTES_PER_S] [--repeat 3]

``--delay`` is the stand-in's wait before each answer (a round trip to a far host), ``--rate``
each connection's bandwidth (a far host's single stream is often slower than its total). Contenders
run interleaved, each into a fresh folder, with the default retry policy (real backoff).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.coco.download import DownloadRequest, DownloadRun, download_coco  # noqa: E402
from explorer.coco.download.http import Client, RetryPolicy, fetch_resumable  # noqa: E402

TINY = ROOT.parent / "shared" / "coco-tiny"
FAULTS = ("--fail-every", "5", "--truncate-every", "7")


def serve(tmp: Path, name: str, *flags: str) -> tuple[subprocess.Popen, str]:
    port = tmp / f"{name}.port"
    cmd = [sys.executable, str(ROOT / "tests" / "coco" / "coco_server.py")]
    cmd += ["--ann", str(TINY / "annotations" / "instances_val2017.json")]
    cmd += ["--images", str(TINY / "val2017"), "--port-file", str(port), *flags]
    p = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    while not (port.exists() and port.read_text()):
        time.sleep(0.05)
    return p, f"http://127.0.0.1:{port.read_text()}"


def per_image(url: str, dest: Path, workers: int) -> tuple[float, int]:
    """Seconds and image bytes of the image stage (the annotation zip fetched before)."""
    download_coco(DownloadRequest(dest, images=False), DownloadRun(url))
    t = time.perf_counter()
    r = download_coco(DownloadRequest(dest), DownloadRun(url, workers=workers))
    return time.perf_counter() - t, r.bytes_fetched


def split_zip(url: str, dest: Path) -> tuple[float, int]:
    """Seconds and bytes of zips/val2017.zip fetched (resumable, as the annotation zip) and
    extracted."""
    t = time.perf_counter()
    part = dest / "val2017.zip.part"
    dest.mkdir(parents=True)
    fetch_resumable(
        Client(RetryPolicy(), 1), f"{url}/zips/val2017.zip", part, lambda *_: None, lambda _: None
    )
    with zipfile.ZipFile(part) as z:
        z.extractall(dest)
    return time.perf_counter() - t, part.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay", type=float, default=0.05)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rate", type=float, default=0, help="per-connection bytes/s (0: no limit)")
    a = ap.parse_args()
    delay = ("--delay", str(a.delay), "--rate", str(a.rate))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        clean, clean_url = serve(tmp, "clean", *delay)
        faulty, faulty_url = serve(tmp, "faulty", *delay, *FAULTS)
        contenders = {
            "per image, 16 workers": lambda d: per_image(clean_url, d, 16),
            "per image, 8 workers": lambda d: per_image(clean_url, d, 8),
            "per image, 16 workers, faults": lambda d: per_image(faulty_url, d, 16),
            "split zip, 1 stream + extract": lambda d: split_zip(clean_url, d),
        }
        runs: dict[str, list[tuple[float, int]]] = {k: [] for k in contenders}
        for i in range(a.repeat):
            for name, run in contenders.items():
                runs[name].append(run(tmp / f"{name}-{i}".replace(" ", "_").replace(",", "")))
        clean.kill()
        faulty.kill()
    rate = f"{a.rate / 1e6:g} MB/s per connection" if a.rate else "no bandwidth limit"
    print(f"stand-in: {a.delay} s per request, {rate}; median of {a.repeat}")
    print("| contender | s | MB/s | images/s |\n|---|---:|---:|---:|")
    for name, r in runs.items():
        s = statistics.median(t for t, _ in r)
        mb = statistics.median(b for _, b in r) / 1e6
        print(f"| {name} | {s:.2f} | {mb / s:.1f} | {80 / s:.0f} |")
        print(f"  all: {', '.join(f'{t:.2f}' for t, _ in r)}", file=sys.stderr)


if __name__ == "__main__":
    main()
