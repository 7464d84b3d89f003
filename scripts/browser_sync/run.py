#!/usr/bin/env python3
"""Browser sync harness: how far a guest's <video> is from the host's, in real headless
Chromium, with clients that behave like the two upstream OpenWatchParty web clients.

    python3 scripts/browser_sync/run.py --server BIN [--runs N] [--behaviours jan,modular]
        [--modes fixed,adaptive] [--json out.json] [--observe S] [--keep]

It generates a test clip with ffmpeg (60 s, 30 fps, 320x180, frame number and timecode
burned in, a 440 Hz tone) into a temporary directory, serves it and the page in page/ from
a loopback HTTP server (with byte ranges, which <video> needs to seek), starts BIN on a free
loopback port once per mode (`BIN --host 127.0.0.1 --port P --allowed-origins '*'
--play-schedule-mode M`), and drives /usr/bin/chromium with Playwright. Everything it starts
is stopped at the end. Needs: Debian's chromium and ffmpeg, PyPI's playwright (never
`playwright install`).

Per run and per (behaviour, mode), two rooms:
  A. host creates a room, guest joins and readies, 3 s later the host clicks play
     (scenario "play"); 10.5 s later the host drags the seek bar to 30 s ("seek");
  B. host creates a room and clicks play; 10 s later a guest joins ("late joiner").
Skew = guest currentTime − host currentTime on a 100 ms grid, both pages' clocks sampled
every 50 ms against one browser clock and interpolated. For each scenario: median and max
|skew| over 2–7 s after the action, the time after which the guest stays within 100 ms,
and the skew of the guest's first presented frame after it started playing. Each page has
a browser context (a window) of its own. See README.md for the client behaviours.

With --drop-runs N, also (PROTOCOL.md §13, JWT mode, a server of its own with a secret
made up for the run): host and guest watch; 5 s after the play, the TCP connection of one
of them (the host, then the guest) is reset through a loopback proxy; its page reconnects
as both upstream clients do (after 1 s, `auth` with its token, a ping, no rejoin). Reported:
whether it came back as the same client (and host), what the other page was told, and the
skew 2–7 s after the drop.

Exit status: 0 when every run was measured, 1 when some run could not be (error, video
that does not play), 2 on bad arguments or missing tools.
"""
import argparse
import http.server
import json
import os
import re
import shutil
import signal
import secrets
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True   # leave no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sync_metrics  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib.jellyfin_tokens import jwt_hs256  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE_DIR = os.path.join(HERE, "page")
MEDIA_ID = "0b5e55ed0b5e55ed0b5e55ed0b5e55ed"   # any 32 hex: both clients gate on a media id
CHROMIUM_FLAGS = [
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",                      # running as root
    "--mute-audio",                      # the clip has sound; the audio clock still runs
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--no-proxy-server",
    # nothing but loopback: every other host name fails to resolve
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
]
SETTLE_S = 3.0           # between the guest's ready and the host's click (clock sync, pings)
LATE_JOIN_AFTER_S = 10.0
SEEK_TO = 30.0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_get(url, timeout=1.0):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as r:
        return r.status, r.read()


# --- the clip -----------------------------------------------------------------------------

def make_clip(directory, seconds, audio):
    path = os.path.join(directory, "clip.webm")
    font = next((f for f in FONTS if os.path.exists(f)), None)
    if font:
        video_in = f"testsrc2=size=320x180:rate=30:duration={seconds}"
        vf = ["-vf", (f"drawtext=fontfile={font}:fontsize=26:fontcolor=white:box=1:boxcolor=black@0.7:"
                      "x=6:y=6:text='%{frame_num}  %{pts\\:hms}'")]
    else:   # testsrc draws its own running counter
        video_in, vf = f"testsrc=size=320x180:rate=30:duration={seconds}", []
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", video_in]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    cmd += vf + ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "400k",
                 "-g", "15", "-keyint_min", "15"]
    if audio:
        cmd += ["-c:a", "libopus", "-b:a", "48k", "-shortest"]
    cmd.append(path)
    subprocess.run(cmd, check=True, timeout=120)
    return path


# --- the loopback web server (page + clip, with byte ranges) --------------------------------

class PageHandler(http.server.BaseHTTPRequestHandler):
    routes = {}   # path -> (file, content type)

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._serve(True)

    def do_HEAD(self):
        self._serve(False)

    def _serve(self, with_body):
        path = urllib.parse.urlsplit(self.path).path
        entry = self.routes.get("/index.html" if path == "/" else path)
        if entry is None:
            self.send_error(404)
            return
        file, ctype = entry
        size = os.path.getsize(file)
        start, end, status = 0, size - 1, 200
        wanted = self.headers.get("Range")
        if wanted:
            m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", wanted)
            if not m or (m.group(1) == "" and m.group(2) == ""):
                self.send_error(416)
                return
            if m.group(1) == "":
                start = max(0, size - int(m.group(2)))
            else:
                start = int(m.group(1))
                if m.group(2):
                    end = min(int(m.group(2)), size - 1)
            if start > end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Cache-Control", "no-cache")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not with_body:
            return
        try:
            with open(file, "rb") as f:
                f.seek(start)
                left = end - start + 1
                while left > 0:
                    chunk = f.read(min(65536, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the media stack cancels range requests it no longer needs


def start_web(clip):
    PageHandler.routes = {
        "/index.html": (os.path.join(PAGE_DIR, "index.html"), "text/html; charset=utf-8"),
        "/owp-client.js": (os.path.join(PAGE_DIR, "owp-client.js"), "text/javascript"),
        "/harness.js": (os.path.join(PAGE_DIR, "harness.js"), "text/javascript"),
        "/clip.webm": (clip, "video/webm"),
    }
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="web", daemon=True).start()
    return httpd


# --- the session server -----------------------------------------------------------------

class SessionServer:
    def __init__(self, binary, mode, logdir, env=None):
        self.binary, self.mode, self.logdir = binary, mode, logdir
        self.env = env
        self.proc = None
        self.port = None
        self.logfile = None

    def start(self):
        self.port = free_port()
        suffix = "-jwt" if self.env else ""
        self.logfile = open(os.path.join(self.logdir, f"server-{self.mode}{suffix}.log"), "wb")
        self.proc = subprocess.Popen(
            [self.binary, "--host", "127.0.0.1", "--port", str(self.port), "--allowed-origins", "*",
             "--play-schedule-mode", self.mode],
            stdin=subprocess.DEVNULL, stdout=self.logfile, stderr=subprocess.STDOUT,
            env=dict(os.environ, **self.env) if self.env else None)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.logfile.flush()
                with open(self.logfile.name, "rb") as f:
                    tail = f.read()[-400:].decode("utf-8", "replace").strip()
                raise RuntimeError(f"server exited with {self.proc.returncode}: {tail or '(no output)'}")
            try:
                if loopback_get(f"http://127.0.0.1:{self.port}/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not answer /healthz within 20 s")

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}/ws"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.logfile:
            self.logfile.close()


# --- a connection that can be cut ----------------------------------------------------------

class ResettableProxy:
    """A loopback TCP relay in front of the session server: `reset()` aborts every connection
    through it with a TCP reset on both sides (SO_LINGER 0), as a lost network or a dead NAT
    entry does: no close frame, no FIN. New connections keep being relayed.

    Each direction is pumped by a thread blocked in recv(); closing a socket another thread is
    blocked on does not tear the connection down on Linux until that call returns, so reset()
    wakes the pumps (shutdown for reading sends nothing) and each pump closes its own socket,
    with linger 0, once it is out of the call."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}/ws"

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            pair = {"sockets": (client, upstream), "reset": threading.Event()}
            with self.lock:
                self.pairs.append(pair)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b, pair["reset"]), daemon=True).start()

    @staticmethod
    def _pump(source, sink, reset):
        try:
            while True:
                data = source.recv(65536)
                if not data or reset.is_set():
                    break
                sink.sendall(data)
        except OSError:
            pass
        if reset.is_set():
            source.close()   # linger 0 is set: a reset, now that no call holds the socket
            return
        try:
            sink.shutdown(socket.SHUT_WR)   # a plain end of stream is relayed as one
        except OSError:
            pass

    def reset(self):
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            pair["reset"].set()
            for sock in pair["sockets"]:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.shutdown(socket.SHUT_RD)   # wakes its pump; sends nothing
                except OSError:
                    pass
        return len(pairs)

    def close(self):
        self.reset()
        self.listener.close()


# --- one run ------------------------------------------------------------------------------

class Pages:
    """The pages of one room, each in a browser context (a window) of its own: headless
    Chromium presents frames at full rate only in the front page of a window, and the
    others would show their video a few frames a second. Console errors are kept."""

    def __init__(self, browser, base_url, ws_url, behaviour):
        self.browser, self.base_url, self.ws_url, self.behaviour = browser, base_url, ws_url, behaviour
        self.contexts = []
        self.errors = []

    def open(self, role, name, ws_url=None, extra=None):
        context = self.browser.new_context(viewport={"width": 320, "height": 220})
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda e: self.errors.append(f"{name}: {e}"))
        page.on("console", lambda m: self.errors.append(f"{name}: {m.text}") if m.type == "error" else None)
        query = urllib.parse.urlencode(dict({"role": role, "behaviour": self.behaviour, "ws": ws_url or self.ws_url,
                                             "name": name, "media": MEDIA_ID}, **(extra or {})))
        page.goto(f"{self.base_url}/index.html?{query}", timeout=15000)
        page.evaluate("harness.init()")
        return page

    def close(self):
        for context in self.contexts:
            context.close()
        self.contexts = []


def sleep_until(wall_ms, page):
    """Sleeps until the browser clock reads wall_ms."""
    left = (wall_ms - page.evaluate("harness.wall()")) / 1000
    if left > 0:
        time.sleep(left)


def run_play_seek(browser, base_url, ws_url, behaviour, observe):
    pages = Pages(browser, base_url, ws_url, behaviour)
    try:
        return _play_seek(pages, observe)
    finally:
        pages.close()


def _play_seek(pages, observe):
    host = pages.open("host", "host")
    room = host.evaluate("harness.createRoom()")
    guest = pages.open("guest", "guest")
    guest.evaluate(f"harness.joinRoom({json.dumps(room)})")
    guest.evaluate("harness.waitReadySent()")
    time.sleep(SETTLE_S)
    t_play = host.evaluate("harness.clickPlay()")
    sleep_until(t_play + observe * 1000 + 500, host)   # the play's observation ends before the seek
    t_seek = host.evaluate(f"harness.seekTo({SEEK_TO})")
    sleep_until(t_seek + observe * 1000 + 200, host)
    hd, gd = host.evaluate("harness.dump()"), guest.evaluate("harness.dump()")
    play = sync_metrics.scenario(hd, gd, t_play, observe, ("scheduled_play", "late_play"))
    seek = sync_metrics.scenario(hd, gd, t_seek, observe, ("seek",))
    return play, seek, (hd, gd), pages.errors


def run_late_join(browser, base_url, ws_url, behaviour, observe):
    pages = Pages(browser, base_url, ws_url, behaviour)
    try:
        return _late_join(pages, observe)
    finally:
        pages.close()


def _late_join(pages, observe):
    host = pages.open("host", "host")
    room = host.evaluate("harness.createRoom()")
    guest = pages.open("guest", "late")   # open, connected, in the lobby
    time.sleep(SETTLE_S)
    t_play = host.evaluate("harness.clickPlay()")
    sleep_until(t_play + LATE_JOIN_AFTER_S * 1000, host)
    t_join = guest.evaluate(f"harness.joinRoom({json.dumps(room)})")
    sleep_until(t_join + observe * 1000 + 200, host)
    hd, gd = host.evaluate("harness.dump()"), guest.evaluate("harness.dump()")
    late = sync_metrics.scenario(hd, gd, t_join, observe, ("room_state", "scheduled_play", "late_play"))
    return late, (hd, gd), pages.errors


DROP_AFTER_S = 5.0
GONE = ("client_left", "host_changed", "room_closed", "participants_update")


def run_drop(browser, base_url, server, secret, behaviour, who, observe):
    """Host and guest watch; the connection of `who` is reset; its page reconnects by itself."""
    pages = Pages(browser, base_url, server.ws_url, behaviour)
    proxy = ResettableProxy(server.port)
    try:
        # Users of their own per run: a page of an earlier run is an away seat of its user for
        # RESUME_GRACE_SECONDS, and the same user authenticating again would resume it.
        run_id = secrets.token_hex(4)

        def extra(sub, name):
            return {"token": jwt_hs256(secret, f"{sub}-{run_id}", name), "user": f"{sub}-{run_id}", "reconnect": "1"}
        host = pages.open("host", "host", proxy.ws_url if who == "host" else None, extra("jf-host", "host"))
        host_id = host.evaluate("OWPClient.state.clientId")
        room = host.evaluate("harness.createRoom()")
        guest = pages.open("guest", "guest", proxy.ws_url if who == "guest" else None, extra("jf-guest", "guest"))
        guest.evaluate(f"harness.joinRoom({json.dumps(room)})")
        guest.evaluate("harness.waitReadySent()")
        guest_id = guest.evaluate("OWPClient.state.clientId")
        time.sleep(SETTLE_S)
        host.evaluate("harness.clickPlay()")
        time.sleep(DROP_AFTER_S)
        t_drop = host.evaluate("harness.wall()")
        cut = proxy.reset()
        sleep_until(t_drop + observe * 1000 + 200, host)
        hd, gd = host.evaluate("harness.dump()"), guest.evaluate("harness.dump()")
        dropped, other = (hd, gd) if who == "host" else (gd, hd)
        told = sorted({e[2]["type"] for e in other["log"] if e[1] == "recv" and e[0] >= t_drop})
        resumed_at = [e[0] for e in dropped["log"] if e[1] == "resumed" and e[0] >= t_drop]
        result = sync_metrics.scenario(hd, gd, t_drop, observe)
        result.update({
            "who": who, "connections_cut": cut,
            "same_id": dropped["clientId"] == (host_id if who == "host" else guest_id),
            "host_still_host": hd["isHost"] and hd["clientId"] == host_id,
            "back_after_s": (resumed_at[0] - t_drop) / 1000 if resumed_at else None,
            "other_was_told": told, "other_saw_a_departure": bool(set(told) & set(GONE)),
            "same_room": dropped["roomId"] == room,
        })
        return result, (hd, gd), pages.errors
    finally:
        pages.close()
        proxy.close()


def drop_table(results):
    lines = ["| client | dropped | back after | same id | host still host | the other was told | skew 2–7 s after the drop: median / max (ms) |",
             "| --- | --- | ---: | --- | --- | --- | ---: |"]
    for r in results:
        w = r["window"]
        lines.append(f"| {r['behaviour']} | {r['who']} | {r['back_after_s']:.2f} s | {'yes' if r['same_id'] else 'NO'} | "
                     f"{'yes' if r['host_still_host'] else 'NO'} | {', '.join(r['other_was_told']) or 'nothing'} | "
                     f"{ms(w['median']) if w else '–'} / {ms(w['max']) if w else '–'} |" if r["back_after_s"] is not None else
                     f"| {r['behaviour']} | {r['who']} | never | – | – | {', '.join(r['other_was_told'])} | – |")
    return "\n".join(lines)


def problems_of(name, result):
    """What makes a scenario unmeasured (the host's or guest's video not playing)."""
    out = []
    if result["window"] is None:
        out.append(f"{name}: no skew samples in the window")
    hh, gh = result["host_health"], result["guest_health"]
    if hh["rate"] is None or hh["rate"] < 0.5:
        out.append(f"{name}: the host's video does not advance (rate {hh['rate']})")
    if gh["rate"] is None or gh["rate"] < 0.5:
        out.append(f"{name}: the guest's video does not advance (rate {gh['rate']})")
    return out


def stalls_of(name, result):
    """Host stalls worth reporting without invalidating the run."""
    hh = result["host_health"]
    notes = []
    if hh["longest_freeze_ms"] and hh["longest_freeze_ms"] >= sync_metrics.FREEZE_MS:
        notes.append(f"{name}: host video stood still {hh['longest_freeze_ms']:.0f} ms while playing")
    if hh["rate"] is not None and abs(hh["rate"] - 1) > 0.03:
        notes.append(f"{name}: host video ran at {hh['rate']:.3f}x")
    return notes


def one_run(browser, base_url, ws_url, behaviour, mode, index, observe, dump_dir):
    play, seek, dumps_a, errors_a = run_play_seek(browser, base_url, ws_url, behaviour, observe)
    late, dumps_b, errors_b = run_late_join(browser, base_url, ws_url, behaviour, observe)
    if dump_dir:
        name = os.path.join(dump_dir, f"{behaviour}-{mode}-{index}.json")
        with open(name, "w") as f:
            json.dump({"room_a": dumps_a, "room_b": dumps_b}, f)
    scenarios = {"play": play, "seek": seek, "late": late}
    problems = [p for k, r in scenarios.items() for p in problems_of(k, r)]
    stalls = [p for k, r in scenarios.items() for p in stalls_of(k, r)]
    return {"behaviour": behaviour, "mode": mode, "run": index, "scenarios": scenarios,
            "problems": problems, "stalls": stalls, "page_errors": errors_a + errors_b,
            "clock": {"host_offset_ms": dumps_a[0]["offsetMs"], "guest_offset_ms": dumps_a[1]["offsetMs"],
                      "guest_pongs": dumps_a[1]["stats"]["pongs"],
                      "guest_pongs_rtt0": dumps_a[1]["stats"]["pongsDiscarded"]},
            "rvfc": dumps_a[1]["rvfc"], "visibility": [dumps_a[0]["visibility"], dumps_a[1]["visibility"]]}


def summary_line(r):
    def w(s):
        x = r["scenarios"][s]["window"]
        return "n/a" if x is None else f"{x['median'] * 1000:.0f}/{x['max'] * 1000:.0f}"
    ff = r["scenarios"]["play"]["first_frame"]
    ffs = "n/a" if not ff or ff["vs_host_frame"] is None else f"{ff['vs_host_frame'] * 1000:+.0f}"
    st = r["scenarios"]["play"]["in_step_from_s"]
    return (f"{r['behaviour']:7s} {r['mode']:8s} run {r['run'] + 1}: play {w('play')} ms, first frame {ffs} ms, "
            f"in step {'never' if st is None else f'{st:.1f} s'}, seek {w('seek')} ms, late {w('late')} ms"
            + (f"  PROBLEMS: {'; '.join(r['problems'])}" if r["problems"] else "")
            + (f"  stalls: {'; '.join(r['stalls'])}" if r["stalls"] else ""))


# --- the table ----------------------------------------------------------------------------

def ms(x):
    return "n/a" if x is None else f"{x * 1000:.0f}"


def signed_ms(x):
    return "n/a" if x is None else f"{x * 1000:+.0f}".replace("-", "−")


def agg_window(runs, name):
    ws = [r["scenarios"][name]["window"] for r in runs if r["scenarios"][name]["window"]]
    if not ws:
        return "n/a"
    return f"{ms(statistics.median(w['median'] for w in ws))} / {ms(max(w['max'] for w in ws))} ms"


def agg_first_frame(runs, name):
    vals = [r["scenarios"][name]["first_frame"]["vs_host_frame"] for r in runs
            if r["scenarios"][name]["first_frame"] and r["scenarios"][name]["first_frame"]["vs_host_frame"] is not None]
    if not vals:
        return "n/a"
    return f"{signed_ms(statistics.median(vals))} ms ({signed_ms(min(vals))}…{signed_ms(max(vals))})"


def agg_in_step(runs, name, observe):
    vals = [r["scenarios"][name]["in_step_from_s"] for r in runs]
    if not vals:
        return "n/a"
    never = sum(v is None for v in vals)
    got = [v for v in vals if v is not None]
    if not got:
        return f"never (> {observe:.0f} s, {never}/{len(vals)} runs)"
    text = f"{statistics.median(got):.1f} s (worst {max(got):.1f} s)"
    if never:
        text += f", {never}/{len(vals)} runs never"
    return text


def tables(results, behaviours, modes, observe):
    groups = [(b, m, [r for r in results if r["behaviour"] == b and r["mode"] == m and not r["problems"]])
              for m in modes for b in behaviours]
    lines = ["| behaviour, mode | after play: median / max | at first frame | in step (≤ 100 ms) from "
             "| after seek: median / max | late joiner: median / max |",
             "| --- | --- | --- | --- | --- | --- |"]
    for b, m, runs in groups:
        lines.append(f"| {b}, {m} ({len(runs)} runs) | {agg_window(runs, 'play')} | {agg_first_frame(runs, 'play')} "
                     f"| {agg_in_step(runs, 'play', observe)} | {agg_window(runs, 'seek')} | {agg_window(runs, 'late')} |")
    lines += ["", "| behaviour, mode | seek: in step from | late joiner: at first frame | late joiner: in step from "
              "| host stalls |", "| --- | --- | --- | --- | --- |"]
    for b, m, runs in groups:
        stalls = sum(len(r["stalls"]) for r in runs)
        lines.append(f"| {b}, {m} | {agg_in_step(runs, 'seek', observe)} | {agg_first_frame(runs, 'late')} "
                     f"| {agg_in_step(runs, 'late', observe)} | {stalls or 'none'} |")
    lines += ["",
              "|skew| = |guest − host| position; windows are 2–7 s after the action (host's click, host's seek, "
              "guest's join), median = median over runs of each run's median, max = the largest in any run. "
              "First frame: the guest's first presented frame after it started playing, minus the host's frame "
              "on screen at that moment (negative = guest behind), median over runs (range). In step: seconds "
              f"after the action from which |skew| stays ≤ 100 ms to the end of the {observe:.0f} s observation."]
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", required=True, help="the owp-server binary")
    ap.add_argument("--runs", type=int, default=3, help="runs per behaviour and mode (0: only the --drop-runs)")
    ap.add_argument("--behaviours", default="jan,modular")
    ap.add_argument("--modes", default="fixed,adaptive")
    ap.add_argument("--json", help="write every measurement here")
    ap.add_argument("--observe", type=float, default=10.0, help="seconds observed after each action (≥ 7)")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--no-audio", action="store_true", help="a clip without a sound track")
    ap.add_argument("--keep", help="keep the clip, server logs and raw page dumps in this directory")
    ap.add_argument("--drop-runs", type=int, default=0,
                    help="also reset the host's, then a guest's, connection this many times per behaviour (JWT mode)")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="abort after this long (default: 2 min per run plus 3)")
    args = ap.parse_args()

    behaviours = [b.strip() for b in args.behaviours.split(",") if b.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [b for b in behaviours if b not in ("jan", "modular")] + [m for m in modes if m not in ("fixed", "adaptive")]
    if bad or args.runs < 0 or (args.runs == 0 and args.drop_runs < 1) or args.observe < sync_metrics.WINDOW[1]:
        log(f"bad arguments: {bad or 'runs/observe'}")
        return 2
    for tool, path in (("server", args.server), ("chromium", args.chromium)):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            log(f"{tool} not found or not executable: {path}")
            return 2
    if shutil.which("ffmpeg") is None:
        log("ffmpeg not found (apt-get install -y --no-install-recommends ffmpeg)")
        return 2
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        log("playwright not installed (pip install playwright; do not run `playwright install`)")
        return 2

    total_runs = args.runs * len(behaviours) * len(modes) + args.drop_runs * len(behaviours)
    limit_s = int(60 * (args.max_minutes if args.max_minutes else 2 * total_runs + 3))

    def on_alarm(signum, frame):
        raise TimeoutError(f"harness took longer than {limit_s} s")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit_s)

    work = tempfile.mkdtemp(prefix="owp-browser-sync-")
    dump_dir = None
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        dump_dir = args.keep
    results, failures, drops = [], [], []
    httpd = server = browser = None
    started = time.monotonic()
    try:
        clip = make_clip(work, 60, audio=not args.no_audio)
        httpd = start_web(clip)
        base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_FLAGS)
            log(f"chromium {browser.version}, clip {clip}, page {base_url}")
            for mode in (modes if args.runs else []):
                server = SessionServer(args.server, mode, dump_dir or work)
                try:
                    server.start()
                    log(f"server {args.server} --play-schedule-mode {mode} on {server.ws_url}")
                    for index in range(args.runs):
                        for behaviour in behaviours:
                            try:
                                r = one_run(browser, base_url, server.ws_url, behaviour, mode, index,
                                            args.observe, dump_dir)
                            except TimeoutError:
                                raise
                            except Exception as e:   # one run that cannot be measured
                                failures.append(f"{behaviour} {mode} run {index + 1}: {type(e).__name__}: {e}")
                                log("FAILED " + failures[-1])
                                continue
                            results.append(r)
                            if r["problems"]:
                                failures.append(f"{behaviour} {mode} run {index + 1}: {'; '.join(r['problems'])}")
                            log(summary_line(r))
                            for e in r["page_errors"][:5]:
                                log(f"    page: {e}")
                finally:
                    server.stop()
                    server = None
            if args.drop_runs:
                secret = secrets.token_urlsafe(32)
                server = SessionServer(args.server, "fixed", dump_dir or work, env={"JWT_SECRET": secret})
                try:
                    server.start()
                    log(f"server {args.server} in JWT mode on {server.ws_url}: connection drops")
                    for index in range(args.drop_runs):
                        for behaviour in behaviours:
                            for who in ("host", "guest"):
                                try:
                                    r, dumps, errors = run_drop(browser, base_url, server, secret, behaviour, who, args.observe)
                                except TimeoutError:
                                    raise
                                except Exception as e:
                                    failures.append(f"drop {who} {behaviour} run {index + 1}: {type(e).__name__}: {e}")
                                    log("FAILED " + failures[-1])
                                    continue
                                r.update({"behaviour": behaviour, "run": index, "page_errors": errors})
                                drops.append(r)
                                if dump_dir:
                                    with open(os.path.join(dump_dir, f"drop-{who}-{behaviour}-{index}.json"), "w") as f:
                                        json.dump(dumps, f)
                                if r["back_after_s"] is None or not r["same_id"] or not r["host_still_host"] or r["other_saw_a_departure"]:
                                    failures.append(f"drop {who} {behaviour} run {index + 1}: not resumed cleanly: {r['other_was_told']}")
                                log(f"drop {who} {behaviour} run {index + 1}: back after {r['back_after_s']} s, same id {r['same_id']}, "
                                    f"host still host {r['host_still_host']}, the other was told {r['other_was_told'] or 'nothing'}")
                finally:
                    server.stop()
                    server = None
            browser.close()
            browser = None
    except Exception as e:   # the harness itself could not go on (timeout, server, browser, clip)
        failures.append(f"aborted: {type(e).__name__}: {e}")
        log(f"ABORTED: {type(e).__name__}: {e}")
    finally:
        signal.alarm(0)
        if server:
            server.stop()
        if httpd:
            httpd.shutdown()
            httpd.server_close()
        if args.keep:
            for name in os.listdir(work):
                shutil.move(os.path.join(work, name), os.path.join(args.keep, name))
        shutil.rmtree(work, ignore_errors=True)

    elapsed = time.monotonic() - started
    print(tables(results, behaviours, modes, args.observe))
    if drops:
        print("\nConnection drops (JWT mode): the page reconnects by itself, as both upstream clients do\n")
        print(drop_table(drops))
    print(f"\n{len(results)} runs measured, {len(drops)} drops, {len(failures)} problems, {elapsed:.0f} s "
          f"(server {args.server}, chromium headless, {args.runs} runs per behaviour and mode)")
    for f in failures:
        print(f"problem: {f}")
    stalls = [s for r in results for s in r["stalls"]]
    for s in stalls:
        print(f"stall: {s}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"server": args.server, "runs": args.runs, "behaviours": behaviours, "modes": modes,
                       "observe_s": args.observe, "elapsed_s": elapsed, "failures": failures,
                       "results": results, "drops": [{k: v for k, v in d.items() if k != "grid"} for d in drops]}, f, indent=1)
    return 1 if failures or not (results or drops) else 0


if __name__ == "__main__":
    sys.exit(main())
