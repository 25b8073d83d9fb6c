"""What every benchmark does with its results: rewrite its section of BENCHMARKS.md and save its
plots under docs/bench/. CPython only (the benchmarks' driver side, not code run on MicroPython).

API::

    from benchreport import replace_section, save_plot, pyplot

    replace_section("driver", markdown)   # text between <!-- driver:begin --> and <!-- driver:end -->
    plt = pyplot()                        # matplotlib.pyplot on the file-only Agg backend
    fig, ax = plt.subplots()
    ...
    link = save_plot(fig, "bus_time")     # writes docs/bench/bus_time.png, closes fig,
                                          # returns "docs/bench/bus_time.png" (for a Markdown link)

``replace_section`` keeps the two marker lines and everything outside them; it raises
``SectionMissing`` when the markers are not both present, in order, exactly once. Several
benchmarks may run at the same time (``make -j bench``): the read-modify-write is done under an
exclusive lock and the file is replaced atomically, so no section update is lost and a reader never
sees half a file. ``path=`` and ``directory=`` point both at another file or folder (tests).
"""

import fcntl
import hashlib
import os
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "BENCHMARKS.md")
PLOTS = os.path.join(ROOT, "docs", "bench")
PLOT_DPI = 110


class SectionMissing(ValueError):
    """BENCHMARKS.md has no usable ``<!-- name:begin -->`` ... ``<!-- name:end -->`` pair."""


def _markers(name):
    return "<!-- %s:begin -->" % name, "<!-- %s:end -->" % name


def replaced(text, name, body):
    """``text`` with the lines between the markers of section ``name`` replaced by ``body``."""
    begin, end = _markers(name)
    if text.count(begin) != 1 or text.count(end) != 1:
        raise SectionMissing("%s and %s must each appear exactly once" % (begin, end))
    start = text.index(begin) + len(begin)
    stop = text.index(end)
    if stop < start:
        raise SectionMissing("%s comes before %s" % (end, begin))
    return text[:start] + "\n" + body.strip("\n") + "\n" + text[stop:]


def _lock_path(path):
    # Outside the tree, so no lock file shows up in git status; one per target file.
    digest = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), "benchreport-%s.lock" % digest)


def replace_section(name, body, path=BENCHMARKS):
    """Replace section ``name`` of the Markdown file at ``path`` (BENCHMARKS.md) with ``body``."""
    with open(_lock_path(path), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(path) as f:
            text = f.read()
        new = replaced(text, name, body)
        temporary = "%s.%d.tmp" % (path, os.getpid())
        with open(temporary, "w") as f:
            f.write(new)
        os.replace(temporary, path)


def pyplot():
    """matplotlib.pyplot set to the Agg backend: plots go to files, no display is needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plot(fig, name, directory=PLOTS):
    """Save ``fig`` as ``<directory>/<name>.png``, close it; return the path relative to the repo
    root when the file lies inside it (what BENCHMARKS.md links to), else the absolute path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name + ".png")
    fig.savefig(path, dpi=PLOT_DPI, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    relative = os.path.relpath(path, ROOT)
    return path if relative.startswith("..") else relative
