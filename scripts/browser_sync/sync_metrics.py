"""Skew metrics of the browser sync harness, from what the pages recorded (harness.js dump()).

Every time is epoch milliseconds of the one browser's clock (performance.timeOrigin +
performance.now() in each page), so host and guest series compare directly. Skew is
guest position − host position, in seconds: positive means the guest is ahead.
"""
import bisect
import statistics

GRID_MS = 100            # skew is sampled every 100 ms
WINDOW = (2.0, 7.0)      # the measured window, seconds after the action
IN_STEP = 0.100          # "in step": |skew| ≤ 100 ms
FREEZE_MS = 300          # a playing video whose clock stands still this long has stalled


class Series:
    """A page's media clock: (wall ms, currentTime) while the video plays or stands."""

    def __init__(self, samples):
        rows = sorted(samples, key=lambda r: r[0])
        self.t = [r[0] for r in rows]
        self.pos = [r[1] for r in rows]
        self.paused = [r[2] for r in rows]
        self.rate = [r[3] for r in rows]
        self.seeking = [r[5] if len(r) > 5 else 0 for r in rows]

    def at(self, wall_ms):
        """currentTime at wall_ms, linear between the neighbouring samples (None outside)."""
        i = bisect.bisect_left(self.t, wall_ms)
        if i < len(self.t) and self.t[i] == wall_ms:
            return self.pos[i]
        if i == 0 or i >= len(self.t):
            return None
        t0, t1 = self.t[i - 1], self.t[i]
        p0, p1 = self.pos[i - 1], self.pos[i]
        if p1 < p0 or p1 - p0 > 2 * (t1 - t0) / 1000 + 0.05:
            # a seek between the two samples: no straight line joins them
            return p0 if wall_ms - t0 < t1 - wall_ms else p1
        return p0 + (p1 - p0) * (wall_ms - t0) / (t1 - t0)


class Frames:
    """A page's presented frames: (wall ms of presentation, mediaTime)."""

    def __init__(self, frames):
        rows = sorted(frames, key=lambda r: r[0])
        self.t = [r[0] for r in rows]
        self.media = [r[1] for r in rows]

    def __len__(self):
        return len(self.t)

    def shown_at(self, wall_ms):
        """mediaTime of the frame on screen at wall_ms (the last presented at or before it)."""
        i = bisect.bisect_right(self.t, wall_ms)
        return self.media[i - 1] if i > 0 else None

    def first_after(self, wall_ms):
        i = bisect.bisect_right(self.t, wall_ms)
        return (self.t[i], self.media[i]) if i < len(self.t) else None


def skew_grid(host, guest, start_ms, seconds):
    """[(seconds after start, skew s or None)] every GRID_MS over `seconds`."""
    out = []
    for k in range(int(round(seconds * 1000 / GRID_MS)) + 1):
        t = start_ms + k * GRID_MS
        h, g = host.at(t), guest.at(t)
        out.append((k * GRID_MS / 1000, None if h is None or g is None else g - h))
    return out


def window_stats(grid, window=WINDOW):
    values = [abs(s) for (t, s) in grid if window[0] - 1e-9 <= t <= window[1] + 1e-9 and s is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "max": max(values), "samples": len(values)}


def in_step_from(grid, threshold=IN_STEP):
    """Seconds after the action from which |skew| stays ≤ threshold to the end of the
    observation; None when the guest is out of step at the end."""
    last_out = None
    for i, (t, s) in enumerate(grid):
        if s is None or abs(s) > threshold:
            last_out = i
    if last_out is None:
        return 0.0
    if last_out == len(grid) - 1:
        return None
    return grid[last_out + 1][0]


def first_frame_skew(host_frames, host, guest_frames, after_ms):
    """Skew of the guest's first presented frame after after_ms, against the host's frame on
    screen at that moment (and against the host's media clock)."""
    first = guest_frames.first_after(after_ms)
    if first is None:
        return None
    wall, media = first
    host_frame = host_frames.shown_at(wall) if len(host_frames) else None
    host_clock = host.at(wall)
    return {
        "wall_ms": wall,
        "delay_ms": wall - after_ms,
        "guest_media": media,
        "vs_host_frame": None if host_frame is None else media - host_frame,
        "vs_host_clock": None if host_clock is None else media - host_clock,
    }


def playback_health(series, start_ms, end_ms):
    """How the video's clock moved over [start, end]: its mean rate (seeks left out) and the
    longest time it stood still while meant to play (not paused, not seeking)."""
    idx = [i for i, t in enumerate(series.t) if start_ms <= t <= end_ms]
    if len(idx) < 2:
        return {"rate": None, "longest_freeze_ms": None, "samples": len(idx)}
    advanced = 0.0
    span = 0.0
    longest = 0.0
    still_since = None
    for a, b in zip(idx, idx[1:]):
        dt = (series.t[b] - series.t[a]) / 1000
        dp = series.pos[b] - series.pos[a]
        playing = not series.paused[a] and not series.paused[b]
        if playing and not series.seeking[a] and not series.seeking[b] and 0 <= dp <= 3 * dt + 0.05:
            advanced += dp
            span += dt
        if playing and not series.seeking[b] and abs(dp) < 1e-6:
            still_since = series.t[a] if still_since is None else still_since
            longest = max(longest, series.t[b] - still_since)
        else:
            still_since = None
    return {"rate": advanced / span if span > 0 else None, "longest_freeze_ms": longest, "samples": len(idx)}


def first_mark(dump, names, after_ms):
    for wall, name, pos in sorted(dump["marks"], key=lambda m: m[0]):
        if wall >= after_ms and name in names:
            return wall, name, pos
    return None


def scenario(host_dump, guest_dump, action_ms, observe_s, first_frame_marks=None):
    """Every metric of one scenario whose action (click, seek, join) happened at action_ms."""
    host, guest = Series(host_dump["samples"]), Series(guest_dump["samples"])
    grid = skew_grid(host, guest, action_ms, observe_s)
    end_ms = action_ms + observe_s * 1000
    result = {
        "action_ms": action_ms,
        "window": window_stats(grid),
        "in_step_from_s": in_step_from(grid),
        "grid": [(t, None if s is None else round(s, 4)) for (t, s) in grid],
        "host_health": playback_health(host, action_ms + 500, end_ms),
        "guest_health": playback_health(guest, action_ms + WINDOW[0] * 1000, end_ms),
        "first_frame": None,
    }
    if first_frame_marks:
        mark = first_mark(guest_dump, first_frame_marks, action_ms)
        if mark is not None:
            ff = first_frame_skew(Frames(host_dump["frames"]), host, Frames(guest_dump["frames"]), mark[0])
            if ff is not None:
                ff["mark"] = mark[1]
                ff["mark_after_action_ms"] = mark[0] - action_ms
            result["first_frame"] = ff
    return result
