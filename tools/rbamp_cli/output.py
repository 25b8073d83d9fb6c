"""Everything the CLI prints: text lines, aligned tables, JSON documents and lines, a progress line.

Results go to stdout; the progress indicator and the live redraw go to stderr/stdout only when
that stream is a terminal (or when forced), so piped output stays one clean record per line.
"""

import json


def hex_addr(addr):
    return "0x%02X" % addr


def number(fmt, value):
    text = fmt % value
    if text.startswith("-") and float(text) == 0:
        return text[1:]  # a tiny negative reading rounded to zero is not an export
    return text


def numbers(values, fmt="%.1f"):
    """``[1000.0, -300.0]`` as ``1000.0, -300.0``."""
    return ", ".join(number(fmt, v) for v in values)


def rounded(value, digits=4):
    """A float for JSON: rounded so float32 noise does not look like precision."""
    return round(float(value), digits)


def _is_tty(stream):
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Output:
    def __init__(self, out, err, as_json=False, progress=None):
        self.out = out
        self.err = err
        self.as_json = as_json
        self._err_tty = _is_tty(err)
        self.progress_on = self._err_tty if progress is None else progress
        self.live = _is_tty(out) and not as_json
        self._progress_shown = False
        self._last_milestone = None

    def line(self, text=""):
        self.end_progress()
        self.out.write(text + "\n")
        self.out.flush()

    def document(self, obj):
        """One JSON document (the whole result of a command)."""
        self.end_progress()
        self.out.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")
        self.out.flush()

    def record(self, obj):
        """One JSON object per line (commands that produce results over time)."""
        self.end_progress()
        self.out.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self.out.flush()

    def table(self, headers, rows):
        widths = [len(h) for h in headers]
        for row in rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        self.line("  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip())
        for row in rows:
            self.line("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())

    def redraw(self, text):
        """A live line: rewritten in place on a terminal, one line each otherwise."""
        if self.live:
            self.out.write("\r\x1b[K" + text)
            self.out.flush()
        else:
            self.line(text)

    def end_redraw(self):
        if self.live:
            self.out.write("\n")
            self.out.flush()

    def progress(self, text, milestone=None):
        """On a terminal: redrawn in place. Forced into a log: a whole line, and only when
        ``milestone`` changes (a line a second would flood it)."""
        if not self.progress_on:
            return
        if not self._err_tty:
            if milestone is None or milestone != self._last_milestone:
                self._last_milestone = milestone
                self.err.write(text + "\n")
                self.err.flush()
            return
        self.err.write("\r\x1b[K" + text)
        self.err.flush()
        self._progress_shown = True

    def end_progress(self):
        if self._progress_shown:
            self.err.write("\r\x1b[K")
            self.err.flush()
            self._progress_shown = False


def progress_bar(done, total, width=24):
    filled = width if total <= 0 else int(width * min(done, total) / total)
    return "[" + "#" * filled + "-" * (width - filled) + "]"
