# The image's own main.py, frozen in: MicroPython runs a frozen main.py in place of the
# filesystem's (pyexec_file_if_exists looks for a frozen module first), so this one hands over to
# a main.py on the filesystem when there is one, and otherwise starts the gateway. A board then
# needs only its config.json, and a main.py of your own (an empty one for a bare REPL) still
# decides what runs. Like any main.py it runs with Ctrl-C allowed, so the REPL stays reachable.
import os

try:
    os.stat("main.py")  # the filesystem only: frozen modules are not in the VFS
except OSError:
    del os
    from gateway.app import main

    main()
else:
    del os
    execfile("main.py")  # noqa: F821 - MicroPython's builtin: runs the file here, as __main__ would
