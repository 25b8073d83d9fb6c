"""Who may change the gateway over the web page: the ``web.password`` of config.json.

    from gateway.web_auth import WebAuth

    auth = WebAuth(cfg["web"]["password"], lambda: gateway.uptime_ms, lambda: setup_active)
    refusal = auth.write_refusal(request)      # None, or (status, message) to answer with
    token = auth.login(request, password)      # a session token, or raises AuthRefused
    auth.logout(request)

Reading (the page, /api/state, /api/events, the redacted /api/config) is open on the LAN;
everything that changes something (PUT, POST) goes through ``write_refusal``:

- Cross-site requests are refused first (403): a request whose ``Origin`` is present must name
  this host (the ``Host`` header); without ``Origin`` a ``Referer`` naming this host, or the header
  ``X-Requested-With: rbamp`` (which a cross-site form cannot send, and a cross-site script can
  only send after a CORS preflight this server never approves), is required.
- In setup mode nobody needs a password (that is what setup mode is for).
- No ``web.password`` configured: 403, settings are read-only.
- The password as HTTP Basic (any user name) or the session cookie from ``login`` (random 128-bit
  token, ``HttpOnly; SameSite=Strict``, kept in RAM only, at most ``MAX_SESSIONS``, each valid
  for ``SESSION_MS``): else 401.
- Failed attempts (Basic or login) are rate limited for all clients together (a per-client table
  would cost RAM a flood can fill): after ``FAILURE_BURST`` failures, one more attempt per
  ``FAILURE_EVERY_MS``; meanwhile 429, even for the right password.

Passwords and tokens are compared in constant time (no early exit on the first differing byte).
``now_ms`` is a millisecond count that never wraps (the gateway's uptime), so sessions expire
correctly after the 12-day ticks wrap of the boards.
"""

import os

SESSION_COOKIE = "rbamp_session"
SESSION_MS = 12 * 3600 * 1000
MAX_SESSIONS = 4
FAILURE_BURST = 5
FAILURE_EVERY_MS = 2000
CSRF_HEADER = "X-Requested-With"
CSRF_VALUE = "rbamp"

FORBIDDEN_NO_PASSWORD = ("settings are read-only: no web.password is set in config.json (set one, "
                         "or change settings in setup mode)")
FORBIDDEN_CROSS_SITE = ("cross-site request refused: send it from the gateway's own page, or add "
                        "the header 'X-Requested-With: rbamp'")


class AuthRefused(Exception):
    """A refused login or write: ``status`` (401, 403, 429) and the message for the client."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def same_bytes(a, b):
    """Constant-time equality of two byte strings: the time depends on ``len(b)`` only (give the
    client's value as ``b``)."""
    diff = len(a) ^ len(b)
    size = len(a)
    for i in range(len(b)):
        diff |= (a[i % size] if size else 0) ^ b[i]
    return diff == 0


class WebAuth:
    def __init__(self, password, now_ms, in_setup=None):
        self._password = password.encode() if password else None
        self._now_ms = now_ms
        self._in_setup = in_setup
        self._sessions = []  # [token bytes, expiry ms]
        self._credit = FAILURE_BURST  # failed attempts allowed now
        self._credit_ms = now_ms()
        self.failures = 0

    @property
    def password_set(self):
        return self._password is not None

    def in_setup(self):
        return self._in_setup is not None and bool(self._in_setup())

    # ------------------------------------------------------------------ checks
    def cross_site(self, request):
        """True when a state-changing request may come from another site's page."""
        headers = request.headers
        host = headers.get("Host")
        origin = headers.get("Origin")
        if origin is not None:
            return host is None or _authority(origin) != _normal_host(host)
        referer = headers.get("Referer")
        if referer is not None and host is not None and _authority(referer) == _normal_host(host):
            return False
        return headers.get(CSRF_HEADER) != CSRF_VALUE

    def authenticated(self, request):
        """True when the request carries the password (Basic) or a live session. A wrong Basic
        password counts as a failed attempt (AuthRefused 429 while rate limited)."""
        if self._password is None:
            return False
        if self._session_index(request) >= 0:
            return True
        given = _basic_password(request.headers.get("Authorization"))
        if given is None:
            return False
        return self._check_password(given)

    def write_refusal(self, request):
        """None when ``request`` may change something, else ``(status, message)``."""
        if self.cross_site(request):
            return 403, FORBIDDEN_CROSS_SITE
        if self.in_setup():
            return None
        if self._password is None:
            return 403, FORBIDDEN_NO_PASSWORD
        try:
            if self.authenticated(request):
                return None
        except AuthRefused as exc:
            return exc.status, exc.message
        return 401, "password required: log in (POST /api/login) or send it as HTTP Basic"

    def can_write(self, request):
        """For the page: would a change from this request be accepted (no failure counted)?"""
        if self.in_setup():
            return True
        return self._password is not None and self._session_index(request) >= 0

    # ------------------------------------------------------------------ sessions
    def login(self, request, password):
        """A new session token (str) for the right password; AuthRefused otherwise."""
        if self.cross_site(request):
            raise AuthRefused(403, FORBIDDEN_CROSS_SITE)
        if self._password is None:
            raise AuthRefused(403, FORBIDDEN_NO_PASSWORD)
        if type(password) is not str or not self._check_password(password.encode()):
            raise AuthRefused(401, "wrong password")
        self._expire()
        if len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(0)  # the oldest session makes room
        token = "".join("%02x" % b for b in os.urandom(16))
        self._sessions.append([token.encode(), self._now_ms() + SESSION_MS])
        return token

    def logout(self, request):
        index = self._session_index(request)
        if index >= 0:
            self._sessions.pop(index)

    def _session_index(self, request):
        given = request.cookies.get(SESSION_COOKIE)
        if not given:
            return -1
        self._expire()
        given = given.encode()
        found = -1
        for index in range(len(self._sessions)):
            if same_bytes(self._sessions[index][0], given):
                found = index
        return found

    def _expire(self):
        now = self._now_ms()
        self._sessions = [entry for entry in self._sessions if entry[1] > now]

    # ------------------------------------------------------------------ rate limit
    def _check_password(self, given):
        """Compare ``given`` (bytes) with the password, counting a failure; AuthRefused(429)
        while failures are rate limited (checked before comparing: no guessing meanwhile)."""
        self._refill()
        if self._credit < 1:
            raise AuthRefused(429, "too many wrong passwords: wait %d s" % (FAILURE_EVERY_MS // 1000))
        if same_bytes(self._password, given):
            return True
        self._credit -= 1
        self.failures += 1
        return False

    def _refill(self):
        now = self._now_ms()
        earned = (now - self._credit_ms) // FAILURE_EVERY_MS
        if earned > 0:
            self._credit = min(FAILURE_BURST, self._credit + earned)
            self._credit_ms += earned * FAILURE_EVERY_MS
        if self._credit >= FAILURE_BURST:
            self._credit_ms = now


def _normal_host(host):
    """A Host header's authority in lower case, without the default port 80."""
    host = host.strip().lower()
    if host.endswith(":80"):
        host = host[:-3]
    return host


def _authority(url):
    """The host[:port] of an absolute URL (Origin, Referer), normalised as ``_normal_host``;
    "" when the URL has none (e.g. Origin: null)."""
    start = url.find("://")
    if start < 0:
        return ""
    rest = url[start + 3:]
    for stop in "/?#":
        cut = rest.find(stop)
        if cut >= 0:
            rest = rest[:cut]
    return _normal_host(rest)


def _basic_password(header):
    """The password of an ``Authorization: Basic`` header (bytes), or None."""
    if not header or not header[:6].lower() == "basic ":
        return None
    import binascii

    try:
        decoded = binascii.a2b_base64(header[6:].strip())
    except ValueError:  # binascii.Error is a ValueError
        return None
    colon = decoded.find(b":")
    return decoded[colon + 1:] if colon >= 0 else None
