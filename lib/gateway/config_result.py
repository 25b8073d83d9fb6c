"""What loading config.json gave: the config to run with and how it was found.

Kept apart from the loader (gateway.config and the schema, checker and reader it imports) so that
the running gateway holds only this small class once the config is loaded, and the loader's
modules can be let go (gateway.app.main)::

    result = load_config("/config.json", "/config.last_good.json")
    result.config["mqtt"]["host"], result.ok, result.source, result.error
"""


class LoadResult:
    """What ``load_config`` found. ``config`` is always a complete, valid-shaped dict."""

    def __init__(self, config, ok, error, source, safe_mode, warnings=None, salvaged=None):
        self.config = config
        self.ok = ok
        self.error = error
        self.source = source          # "file" | "last_good" | "defaults"
        self.safe_mode = safe_mode
        self.warnings = warnings or []  # non-fatal: last good copy not writable, sections salvaged
        self.salvaged = salvaged or []  # top-level keys taken from a broken file in safe mode

    def __repr__(self):
        # the config holds passwords: a REPL user printing the result must not see them
        return "<LoadResult source=%s ok=%s safe_mode=%s error=%r>" % (
            self.source, self.ok, self.safe_mode, self.error)
