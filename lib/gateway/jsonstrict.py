"""A strict JSON reader for files a person edits and a board must not misread (config.json).

    from gateway.jsonstrict import parse_json, JsonError

    try:
        doc = parse_json(data, "config.json")     # str, bytes or bytearray
    except JsonError as exc:
        print(exc)      # config.json: not valid JSON: trailing comma before '}' at line 3 column 1
        exc.key         # None, or the dotted path of a key given twice ("mqtt.port")

Why not the ``json`` module: MicroPython 1.25 (today's stock firmware) accepts a truncated
document such as ``{"a": 1`` as complete, so a config.json caught half-copied would be taken as
valid and become the "last good" copy. It also accepts trailing commas, and with a key given twice
it silently keeps one value and loses the other. This reader rejects all three, and words its
messages (problem, line and column, counted in bytes) the same on every runtime.

What it accepts is RFC 8259 exactly, plus a leading UTF-8 byte-order mark (Windows editors write
one). Numbers without a fraction or exponent become ints, the others floats; NaN and Infinity are
refused. Nesting is bounded (``MAX_NESTING``) so a hostile file cannot exhaust the stack.

Memory: the reader walks the bytes it is given in place (bytes index in O(1) on MicroPython, str
does not); only a str is encoded once, and a bytearray or a byte-order mark costs one copy.
"""

MAX_NESTING = 16        # config.json nests 3 deep; bounded recursion keeps a hostile file from crashing


class JsonError(ValueError):
    """The text is not valid JSON (``key`` None) or gives a key twice (``key``: its dotted path).
    ``str(exc)`` is the full message, starting with the document's name."""

    def __init__(self, message, key=None):
        super().__init__(message)
        self.key = key


_WHITESPACE = b" \t\r\n"
_DIGITS = b"0123456789"
_ESCAPES = {0x22: '"', 0x5C: "\\", 0x2F: "/", 0x62: "\b", 0x66: "\f", 0x6E: "\n", 0x72: "\r", 0x74: "\t"}


class _Reader:
    """RFC 8259 JSON over bytes (bytes index in O(1) on MicroPython; str does not)."""

    def __init__(self, data, source):
        self.data = data
        self.pos = 0
        self.source = source

    def fail(self, problem, pos=None, key=None):
        if pos is None:
            pos = self.pos
        if pos >= len(self.data):
            problem = "unexpected end of file (is it incomplete, or still being copied?)"
        line = self.data.count(b"\n", 0, pos) + 1
        column = pos - (self.data.rfind(b"\n", 0, pos) + 1) + 1
        where = "line %d column %d" % (line, column)
        if key is not None:
            raise JsonError("%s: %s: %s (%s)" % (self.source, key, problem, where), key)
        raise JsonError("%s: not valid JSON: %s at %s" % (self.source, problem, where))

    def skip_space(self):
        data = self.data
        pos = self.pos
        end = len(data)
        while pos < end and data[pos] in _WHITESPACE:
            pos += 1
        self.pos = pos

    def document(self):
        self.skip_space()
        value = self.value("", 0)
        self.skip_space()
        if self.pos != len(self.data):
            self.fail("unexpected text after the end of the document")
        return value

    def value(self, path, depth):
        if depth > MAX_NESTING:
            self.fail("nested too deeply")
        if self.pos >= len(self.data):
            self.fail("")
        char = self.data[self.pos]
        if char == 0x7B:  # {
            return self.object(path, depth)
        if char == 0x5B:  # [
            return self.array(path, depth)
        if char == 0x22:  # "
            return self.string()
        if char == 0x2D or char in _DIGITS:
            return self.number()
        for word, result in ((b"true", True), (b"false", False), (b"null", None)):
            if self.data[self.pos:self.pos + len(word)] == word:
                self.pos += len(word)
                return result
        if self.data[self.pos:self.pos + 3] in (b"NaN", b"Inf"):
            self.fail("NaN and Infinity are not JSON numbers")
        self.fail("expected a value (a string needs double quotes)")

    def object(self, path, depth):
        self.pos += 1
        out = {}
        self.skip_space()
        if self.pos < len(self.data) and self.data[self.pos] == 0x7D:
            self.pos += 1
            return out
        while True:
            self.skip_space()
            if self.pos >= len(self.data) or self.data[self.pos] != 0x22:
                if self.pos < len(self.data) and self.data[self.pos] == 0x7D:
                    self.fail("trailing comma before '}'")
                self.fail("expected a key in double quotes")
            key_pos = self.pos
            key = self.string()
            child = path + "." + key if path else key
            if key in out:
                self.fail("appears twice", key_pos, child)
            self.skip_space()
            self.expect(0x3A, "expected ':' after a key")
            self.skip_space()
            out[key] = self.value(child, depth + 1)
            self.skip_space()
            if self.pos < len(self.data) and self.data[self.pos] == 0x2C:
                self.pos += 1
                continue
            self.expect(0x7D, "expected ',' or '}'")
            return out

    def array(self, path, depth):
        self.pos += 1
        out = []
        self.skip_space()
        if self.pos < len(self.data) and self.data[self.pos] == 0x5D:
            self.pos += 1
            return out
        while True:
            self.skip_space()
            if self.pos < len(self.data) and self.data[self.pos] == 0x5D:
                self.fail("trailing comma before ']'")
            out.append(self.value("%s[%d]" % (path, len(out)), depth + 1))
            self.skip_space()
            if self.pos < len(self.data) and self.data[self.pos] == 0x2C:
                self.pos += 1
                continue
            self.expect(0x5D, "expected ',' or ']'")
            return out

    def expect(self, char, problem):
        if self.pos >= len(self.data) or self.data[self.pos] != char:
            self.fail(problem)
        self.pos += 1

    def string(self):
        data = self.data
        start = self.pos + 1
        pos = start
        end = len(data)
        pieces = None
        while True:
            if pos >= end:
                self.fail("", end)
            char = data[pos]
            if char == 0x22:
                break
            if char < 0x20:
                self.fail("control character inside a string (write \\n, \\t)", pos)
            if char == 0x5C:
                if pieces is None:
                    pieces = []
                pieces.append(self.decode(data[start:pos], start))
                pos, text = self.escape(pos)
                pieces.append(text)
                start = pos
                continue
            pos += 1
        self.pos = pos + 1
        tail = self.decode(data[start:pos], start)
        if pieces is None:
            return tail
        pieces.append(tail)
        return "".join(pieces)

    def escape(self, pos):
        data = self.data
        if pos + 1 >= len(data):
            self.fail("", len(data))
        kind = data[pos + 1]
        if kind in _ESCAPES:
            return pos + 2, _ESCAPES[kind]
        if kind != 0x75:  # u
            self.fail("unknown escape in a string", pos)
        code = self.hex4(pos + 2)
        pos += 6
        if 0xD800 <= code < 0xDC00:
            # a UTF-16 surrogate pair spells one character outside the BMP
            if data[pos:pos + 2] != b"\\u":
                self.fail("unpaired surrogate in a \\u escape", pos)
            low = self.hex4(pos + 2)
            if not 0xDC00 <= low < 0xE000:
                self.fail("unpaired surrogate in a \\u escape", pos)
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            pos += 6
        elif 0xDC00 <= code < 0xE000:
            self.fail("unpaired surrogate in a \\u escape", pos - 6)
        return pos, chr(code)

    def hex4(self, pos):
        digits = self.data[pos:pos + 4]
        if len(digits) < 4:
            self.fail("", len(self.data))
        code = 0
        for char in digits:
            if 0x30 <= char <= 0x39:
                code = code * 16 + char - 0x30
            elif 0x61 <= char <= 0x66 or 0x41 <= char <= 0x46:
                code = code * 16 + (char | 0x20) - 0x57
            else:
                self.fail("bad \\u escape", pos)
        return code

    def decode(self, raw, pos):
        try:
            return raw.decode("utf-8")
        except UnicodeError:
            self.fail("text is not valid UTF-8", pos)

    def number(self):
        data = self.data
        start = self.pos
        pos = start
        end = len(data)
        if data[pos] == 0x2D:
            pos += 1
        digits_start = pos
        while pos < end and data[pos] in _DIGITS:
            pos += 1
        if pos == digits_start:
            self.fail("expected digits", pos)
        if data[digits_start] == 0x30 and pos - digits_start > 1:
            self.fail("numbers cannot have leading zeros (JSON has no octal or hex)", digits_start)
        is_float = False
        if pos < end and data[pos] == 0x2E:
            pos += 1
            fraction_start = pos
            while pos < end and data[pos] in _DIGITS:
                pos += 1
            if pos == fraction_start:
                self.fail("expected digits after '.'", pos)
            is_float = True
        if pos < end and data[pos] in b"eE":
            pos += 1
            if pos < end and data[pos] in b"+-":
                pos += 1
            exponent_start = pos
            while pos < end and data[pos] in _DIGITS:
                pos += 1
            if pos == exponent_start:
                self.fail("expected digits in the exponent", pos)
            is_float = True
        if pos < end and data[pos] == 0x78 and data[start:pos] in (b"0", b"-0"):
            self.fail("JSON has no hex numbers (write the address as a string, \"0x50\")", start)
        self.pos = pos
        text = data[start:pos]
        return float(text) if is_float else int(text)


def parse_json(text, source="document"):
    """Python values from JSON text (str, bytes or bytearray); raises JsonError. ``source`` names
    the document in messages."""
    if type(text) is str:
        text = text.encode("utf-8")
    elif type(text) is not bytes:
        text = bytes(text)
    if text[:3] == b"\xef\xbb\xbf":
        # Windows editors save UTF-8 with a byte-order mark; it carries no meaning
        text = text[3:]
    return _Reader(text, source).document()
