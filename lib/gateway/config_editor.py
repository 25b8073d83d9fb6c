"""config.json edited from the web page: shown without its secrets, replaced only by a valid one.

    from gateway.config_editor import ConfigEditor

    editor = ConfigEditor(board, config_result)
    view = editor.view()       # {"config": {... every secret ""}, "secrets_set": ["wifi.password"],
                               #  "in_use": "config.json", "error": None}
    editor.save(body)          # bytes or a dict: the whole document; raises ConfigError (.key)

Rules:

- The browser never gets a secret: every key ``gateway.config_secrets`` calls secret is sent as
  ``""`` when it holds a value, and its dotted path is listed in ``secrets_set``.
- A secret sent back as ``""`` keeps the stored value (the page never had it); a secret the file
  never had stays unset; ``null`` or a missing key unsets it; any other value replaces it.
- The merged document must pass ``gateway.config.parse_config``, the board's own checker, whose
  ``ConfigError`` names the key; nothing is written otherwise. The document is bounded
  (``MAX_DOCUMENT_BYTES``).
- The file is replaced atomically (temp file + rename), after the current config.json, when it is
  valid, was copied to the last good copy: a power cut leaves the old file or the new one, and a
  good old one stays at hand. The written file is indented, keys in the schema's order (MicroPython
  dicts keep no order), so it reads like a file written by hand.

The stored document is what ``view()`` shows and what blank secrets are taken from: config.json
when it holds a JSON object, else the last good copy, else ``{}`` (a board in setup mode may have
no config.json at all).
"""

import json

MAX_DOCUMENT_BYTES = 8192  # a config.json is ~1 KB; the web server's body limit is this too
# gateway.config.MAX_FILE_BYTES (a test keeps them equal): not imported, because reading for the
# page loads only the strict JSON reader, not the whole loader (~7 KB the running gateway let go);
# saving loads it (the board's checker), and a save is followed by a restart
STORED_FILE_BYTES = 16384
SECRET_BLANK = ""

# What LoadResult.source means for the page (contract: "config.json" | "last_good" | "safe_mode")
_IN_USE = {"file": "config.json", "last_good": "last_good", "defaults": "safe_mode"}


class ConfigEditor:
    """The board's config.json (``board.config_path``, ``board.last_good_path``) as the page
    edits it. ``config_result``: what the boot loaded (which copy is in use, and its error)."""

    def __init__(self, board, config_result):
        self.path = board.config_path
        self.last_good_path = board.last_good_path
        self.config_result = config_result

    # ------------------------------------------------------------------ reading
    def stored_document(self):
        """The stored document with its secrets (never for the browser): config.json if it is a
        JSON object, else the last good copy, else {}."""
        for path in (self.path, self.last_good_path):
            document = _read_object(path)
            if document is not None:
                return document
        return {}

    def view(self):
        """What GET /api/config shows (the caller adds ``writable``)."""
        result = self.config_result
        shown, secrets_set = redacted(self.stored_document())
        # "text": the same document in the schema's order (a JSON object's order is not kept on
        # its way to the browser), as the file is written
        return {"config": shown, "text": encode(shown).decode(), "secrets_set": secrets_set,
                "in_use": _IN_USE.get(result.source, result.source), "error": result.error}

    # ------------------------------------------------------------------ writing
    def save(self, body):
        """Validate and write the whole document ``body`` (JSON bytes/str, or a decoded dict).
        Raises ``ConfigError`` (``.key``: the dotted key or None) without writing anything."""
        from gateway.config import ConfigError, parse_config, parse_json

        if type(body) is not dict:
            if len(body) > MAX_DOCUMENT_BYTES:
                raise ConfigError("config.json: larger than %d bytes" % MAX_DOCUMENT_BYTES)
            body = parse_json(body)
        if type(body) is not dict:
            raise ConfigError("config.json: must be a JSON object ({...})")
        document = merge_secrets(body, self.stored_document())
        parse_config(document)  # the board's own checker; raises with the key
        data = encode(document)
        if len(data) > MAX_DOCUMENT_BYTES:
            raise ConfigError("config.json: larger than %d bytes" % MAX_DOCUMENT_BYTES)
        self._keep_last_good()
        from gateway.config import write_atomically

        write_atomically(self.path, data)
        return document

    def _keep_last_good(self):
        """Copy the current config.json to the last good copy when it is valid (a broken one
        must never become the fallback); an unreadable or invalid file leaves the copy alone."""
        from gateway.config import ConfigError, parse_config, write_atomically

        current = _read_bytes(self.path)
        if current is None or current == _read_bytes(self.last_good_path):
            return
        try:
            parse_config(current)
        except ConfigError:
            return
        write_atomically(self.last_good_path, current)


# ---------------------------------------------------------------------------------- documents
def redacted(document):
    """``(copy with every set secret as "", [dotted paths of the set secrets])``."""
    found = []
    return _redact(document, "", found), found


def _redact(value, path, found):
    from gateway.config_secrets import is_secret_key

    if type(value) is dict:
        out = {}
        for key, item in value.items():
            where = path + "." + key if path else key
            if is_secret_key(key) and item is not None:
                if item != SECRET_BLANK:
                    found.append(where)
                out[key] = SECRET_BLANK
            else:
                out[key] = _redact(item, where, found)
        return out
    if type(value) is list:
        return [_redact(value[i], "%s[%d]" % (path, i), found) for i in range(len(value))]
    return value


def merge_secrets(document, stored):
    """``document`` with every secret given as "" replaced by the value at the same place in
    ``stored`` (removed when ``stored`` has none there). A new dict; ``document`` is not changed."""
    from gateway.config_secrets import is_secret_key

    if type(document) is dict:
        out = {}
        for key, item in document.items():
            kept = stored.get(key) if type(stored) is dict else None
            if is_secret_key(key) and item == SECRET_BLANK:
                if type(kept) is str and kept:
                    out[key] = kept
                continue  # never set: stays unset
            out[key] = merge_secrets(item, kept)
        return out
    if type(document) is list:
        kept_list = stored if type(stored) is list else []
        return [merge_secrets(document[i], kept_list[i] if i < len(kept_list) else None)
                for i in range(len(document))]
    return document


def encode(document):
    """The document as config.json bytes: two-space indents, keys in the schema's order."""
    lines = []
    _encode(document, "", "", lines, "")
    lines.append("\n")
    return "".join(lines).encode()


def _ordered_keys(value, section):
    from gateway.config_schema import ROWS

    order = [row[1] for row in ROWS if row[0] == section and row[1] != "[]" and row[1] in value]
    rest = sorted(key for key in value if key not in order)
    return order + rest


def _encode(value, section, indent, out, lead):
    out.append(lead)
    if type(value) is dict:
        if not value:
            out.append("{}")
            return
        inner = indent + "  "
        keys = _ordered_keys(value, section)
        out.append("{")
        for index in range(len(keys)):
            key = keys[index]
            child = section + "." + key if section else key
            _encode(value[key], child, inner, out, "\n" + inner + json.dumps(key) + ": ")
            if index < len(keys) - 1:
                out.append(",")
        out.append("\n" + indent + "}")
    elif type(value) is list:
        if not value or all(type(item) not in (dict, list) for item in value):
            out.append("[" + ", ".join(json.dumps(item) for item in value) + "]")
            return
        inner = indent + "  "
        out.append("[")
        for index in range(len(value)):
            _encode(value[index], section + "[]", inner, out, "\n" + inner)
            if index < len(value) - 1:
                out.append(",")
        out.append("\n" + indent + "]")
    else:
        out.append(json.dumps(value))


def _read_bytes(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read(STORED_FILE_BYTES + 1)
    except OSError:
        return None
    return data if len(data) <= STORED_FILE_BYTES else None


def _read_object(path):
    """The file's JSON object, or None (missing, too big, not JSON, not an object)."""
    from gateway.jsonstrict import JsonError, parse_json

    data = _read_bytes(path)
    if data is None:
        return None
    try:
        document = parse_json(data, "config.json")
    except JsonError:
        return None
    return document if type(document) is dict else None
