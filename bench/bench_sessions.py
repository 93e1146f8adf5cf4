"""Benchmark: many browser sessions paging Browse at once (issue 22, probe item 13).

One ``streamlit run app.py`` server; headless Chromium pages, each its own session, all pressing
"Next page ▶" at the same time; a page turn is timed from the click until the page box shows the
next page, the script is idle and every thumbnail of the new page has loaded. Rounds: one
session alone, then ``--sessions`` together, on a cold cache (a fresh ``EXPLORER_CACHE``: every
thumbnail drawn for the first time) and again warm (the same pages: what the server's shared
caches hold). Then the server's share alone: the same turns by AppTest sessions in threads (no
browser). Prints p50/p95 per round, side by side.

What serves many users (explorer/app/caches.py): one index per annotation file for every session
(``st.cache_resource``), filtered rows, overlays and thumbnails in ``st.cache_data`` (one copy for
all sessions; Streamlit computes a key once while other sessions wait for it) and thumbnails on
disk under ``<cache>/thumbs``; a session keeps only its widgets and a small BrowseState.

usage: python bench/bench_sessions.py [--sessions 8] [--turns 3]
           [--coco ../shared/coco-tiny/annotations/instances_val2017.json --images DIR]
Needs /usr/bin/chromium and playwright (as the browser tests do). The browsers run on the same
machine as the server: on few cores they take much of the time measured (say so with the numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
TINY = ROOT.parent / "shared" / "coco-tiny"


def start_server(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [
        sys.executable,
        *("-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless=true"),
        *(f"--server.port={port}", "--server.address=127.0.0.1"),
        *("--server.fileWatcherType=none", "--browser.gatherUsageStats=false"),
    ]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"streamlit did not come up (see {log})")


# the page box shows `want`, no script runs, and every image on the page has loaded
_TURNED = """want => {
  const box = document.querySelector("input[aria-label^='Page (of']");
  if (!box || Number(box.value) !== want) return false;
  if (document.querySelector("[data-testid='stStatusWidget']")) return false;
  const imgs = [...document.querySelectorAll("[data-testid='stImage'] img")];
  return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""


async def settled(page, want: int) -> None:
    await page.wait_for_function(_TURNED, arg=want, timeout=300_000, polling=50)


async def session(browser, url: str, turns: int, start: asyncio.Barrier) -> list[float]:
    """One session: open Browse, then turn ``turns`` pages in step with the others."""
    # tall enough for the whole grid: images below the fold load lazily, never "complete"
    page = await browser.new_page(viewport={"width": 1400, "height": 4000})
    await page.goto(url)
    await settled(page, 1)
    times = []
    for turn in range(turns):
        await start.wait()  # every session clicks at once
        t = time.perf_counter()
        await page.get_by_role("button", name="Next page ▶").click()
        await settled(page, turn + 2)
        times.append(time.perf_counter() - t)
    await page.close()
    return times


async def round_of(url: str, sessions: int, turns: int) -> list[float]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        start = asyncio.Barrier(sessions)
        done = await asyncio.gather(*(session(browser, url, turns, start) for _ in range(sessions)))
        await browser.close()
    return [t for times in done for t in times]


def script_only(sessions: int, turns: int, env: dict[str, str]) -> list[float]:
    """The server's share: the same page turns as AppTest sessions in threads (the page script
    and Streamlit's session machinery; no browser, no websocket, no image transfer)."""
    import threading

    from streamlit.testing.v1 import AppTest

    os.environ.update(env)
    apps = [
        AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run() for _ in range(sessions)
    ]
    times: list[float] = []
    start = threading.Barrier(sessions)

    def turn_pages(at) -> None:
        for turn in range(turns):
            start.wait()
            t = time.perf_counter()
            at.number_input(key="b_page").set_value(turn + 2).run()
            times.append(time.perf_counter() - t)

    threads = [threading.Thread(target=turn_pages, args=(at,)) for at in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def _p50_p95(times: list[float]) -> tuple[float, float]:
    high = statistics.quantiles(times, n=20, method="inclusive")[-1] if len(times) > 1 else times[0]
    return statistics.median(times), high


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--turns", type=int, default=3, help="page turns per session and round")
    ap.add_argument("--coco", default=str(TINY / "annotations" / "instances_val2017.json"))
    ap.add_argument("--images", default=str(TINY / "val2017"))
    ap.add_argument("--script-only", metavar="CACHE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.script_only:  # the child process of the last round: its times on stdout
        env = dict(EXPLORER_COCO=args.coco, EXPLORER_IMAGES=args.images)
        env["EXPLORER_CACHE"] = args.script_only
        print(*script_only(args.sessions, args.turns, env))
        return
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no {CHROMIUM}")
    work = Path(tempfile.mkdtemp(prefix="bench-sessions-"))
    rows = []
    for label, sessions in (("1 session", 1), (f"{args.sessions} sessions", args.sessions)):
        env = dict(os.environ, EXPLORER_COCO=args.coco, EXPLORER_IMAGES=args.images)
        env["EXPLORER_CACHE"] = str(work / f"cache-{sessions}")  # cold: no thumbnail drawn yet
        proc, url = start_server(env, work / f"server-{sessions}.log")
        try:
            for state in ("cold", "warm"):
                times = asyncio.run(round_of(url, sessions, args.turns))
                rows.append((f"{label}, {state}", len(times), *_p50_p95(times)))
        finally:
            proc.terminate()
            proc.wait(10)
    # in a process of its own (AppTest after Playwright's event loop in one process fails)
    cache = work / f"cache-{args.sessions}"  # warm: the browser rounds drew every thumbnail
    found = subprocess.run(
        [sys.executable, __file__, "--script-only", str(cache), *sys.argv[1:]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    times = [float(t) for t in found]
    rows.append((f"{args.sessions} sessions, warm, script only", len(times), *_p50_p95(times)))
    print(f"load average before the last round: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'Browse page turns':32}{'turns':>6}{'p50 s':>8}{'p95 s':>8}")
    for name, n, p50, high in rows:
        print(f"{name:32}{n:6d}{p50:8.2f}{high:8.2f}")


if __name__ == "__main__":
    main()
