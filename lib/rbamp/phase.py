"""Where the module's 200 ms RT commits fall on the master's clock, learned from the digest ``seq``.

Without DRDY a v1.2 module gives no signal when it rewrites its RT block, and a byte-wise pass
that straddles a rewrite is torn. The digest's ``seq`` byte counts the commits, so two reads of
it tell whether a commit happened between them: a changed ``seq`` says one fell in that interval,
an unchanged one says none did. ``CommitPhase`` keeps the tightest interval known to hold a commit
and moves it on by whole windows (the length ``WindowLearner`` measured), so the driver can start
a pass right after a commit instead of running into one. Everything is small-int tick arithmetic.

    phase.observe(seq, t_before, t_after)      # after every read of the digest seq
    wait = phase.wait_ms(now_ms, pass_ms)      # before a pass: 0, or how long to wait
"""

_FORGET_MS = 120000  # older knowledge has drifted too far to move on by whole windows
_DRIFT_WINDOWS = 32  # the window length is known to about 1/32 ms per window: widen by that


class CommitPhase:
    def __init__(self, clock, windows):
        self.clock = clock
        self.windows = windows  # a WindowLearner: its window_us is the module's window length
        self.known = False
        self.lo = 0  # a commit happened after tick lo (ms) ...
        self.hi = 0  # ... and at or before tick hi
        self._seen = False
        self._seq = 0
        self._seq_before = 0
        self._seq_after = 0

    def forget(self):
        self.known = False
        self._seen = False

    def observe(self, seq, t_before, t_after):
        """A read of the digest seq that started at ``t_before`` and ended at ``t_after`` (ms)."""
        if self._seen:
            clock = self.clock
            window_ms = self.windows.window_us // 1000
            if seq == self._seq:
                # no commit between the end of the previous read and the start of this one
                if 0 <= clock.ticks_diff(t_before, self._seq_after) < window_ms:
                    self._clean(self._seq_after, t_before)
            elif clock.ticks_diff(t_after, self._seq_before) >= 0:
                # the newest commit fell within the last window before this read ended
                lo = self._seq_before
                if clock.ticks_diff(t_after, lo) > window_ms:
                    lo = clock.ticks_add(t_after, -window_ms)
                self._commit_in(lo, t_after)
        self._seen = True
        self._seq = seq
        self._seq_before = t_before
        self._seq_after = t_after

    def _move_near(self, t):
        """Move the interval by whole windows to the commit nearest tick t; False if unknown."""
        if not self.known:
            return False
        clock = self.clock
        half = clock.ticks_diff(self.hi, self.lo) // 2
        mid = clock.ticks_add(self.lo, half)
        d = clock.ticks_diff(t, mid)
        if not -_FORGET_MS < d < _FORGET_MS:
            self.known = False
            return False
        window_us = self.windows.window_us
        k = (d * 1000 + window_us // 2) // window_us if d >= 0 else -((-d * 1000 + window_us // 2) // window_us)
        if k == 0:
            return True
        steps = k if k > 0 else -k
        shift = k * window_us // 1000 if k > 0 else -(steps * window_us // 1000)
        margin = 1 + steps // _DRIFT_WINDOWS
        self.lo = clock.ticks_add(self.lo, shift - margin)
        self.hi = clock.ticks_add(self.hi, shift + margin)
        if clock.ticks_diff(self.hi, self.lo) * 1000 >= window_us // 2:
            self.known = False  # too wide to plan around
            return False
        return True

    def _commit_in(self, a, b):
        """A commit happened in (a, b]."""
        clock = self.clock
        if self._move_near(b):
            lo = self.lo if clock.ticks_diff(self.lo, a) > 0 else a
            hi = self.hi if clock.ticks_diff(self.hi, b) < 0 else b
            if clock.ticks_diff(hi, lo) > 0:
                self.lo = lo
                self.hi = hi
                return
        # no earlier knowledge, or it disagrees (drift, a module reboot): start from this one
        self.lo = a
        self.hi = b
        self.known = clock.ticks_diff(b, a) * 1000 < self.windows.window_us // 2

    def _clean(self, a, b):
        """No commit happened in (a, b]."""
        if not self._move_near(b):
            return
        clock = self.clock
        covers_lo = clock.ticks_diff(a, self.lo) <= 0 < clock.ticks_diff(b, self.lo)
        covers_hi = clock.ticks_diff(a, self.hi) < 0 <= clock.ticks_diff(b, self.hi)
        if covers_lo and covers_hi:
            self.known = False  # it contradicts what we knew: learn again
        elif covers_lo:
            self.lo = b
        elif covers_hi:
            self.hi = a

    def wait_ms(self, now_ms, pass_ms):
        """ms to wait so that a pass of ``pass_ms`` starting then sees no commit (0: start now,
        also when the phase is unknown or too uncertain to plan a clean pass around)."""
        if not self._move_near(now_ms):
            return 0
        clock = self.clock
        window_ms = self.windows.window_us // 1000
        if clock.ticks_diff(self.hi, self.lo) + pass_ms + 2 >= window_ms:
            return 0
        end = clock.ticks_add(now_ms, pass_ms)
        for k in range(2):  # the commit nearest now and the one after it
            lo = clock.ticks_add(self.lo, k * window_ms)
            hi = clock.ticks_add(self.hi, k * window_ms)
            if clock.ticks_diff(hi, now_ms) >= 0 and clock.ticks_diff(end, lo) > 0:
                return clock.ticks_diff(hi, now_ms) + 1
        return 0
