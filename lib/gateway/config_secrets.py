"""Which config values are secrets, and copies of a config with them hidden.

    from gateway.config_secrets import redact, secret_values

    print(redact(cfg))                  # every password (and anything named like one) as "***"
    for secret in secret_values(raw):   # hand them to the logger, which masks them in every line
        log.add_secret(secret)

A key is secret when it is ``password`` or its name contains a fragment a secret's name usually
has: a typo'd or foreign key ("pass", "psk", "token") may still hold a password, so such values
are scrubbed from messages and redacted too, even though validation rejects the key itself.
"""

SECRET_KEYS = ("password",)
_SECRET_FRAGMENTS = ("pass", "pasw", "pwd", "psk", "secret", "token")
REDACTED = "***"
_MAX_DEPTH = 16  # as deep as the JSON reader nests: a decoded document is never deeper


def is_secret_key(name):
    lowered = name.lower()
    if lowered in SECRET_KEYS:
        return True
    for fragment in _SECRET_FRAGMENTS:
        if fragment in lowered:
            return True
    return False


def redact(value):
    """Deep copy with the value of every secret key replaced by "***" (unset ones stay null)."""
    if type(value) is dict:
        out = {}
        for key, item in value.items():
            if type(key) is str and is_secret_key(key) and item is not None:
                out[key] = REDACTED
            else:
                out[key] = redact(item)
        return out
    if type(value) is list:
        return [redact(item) for item in value]
    return value


def secret_values(raw):
    """Every non-empty string held by a secret-looking key anywhere in ``raw`` (for log masking)."""
    found = []
    _collect_secrets(raw, found, 0)
    return found


def _collect_secrets(value, found, depth):
    if depth > _MAX_DEPTH:
        return
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is str and is_secret_key(key) and type(item) is str and item:
                if item not in found:
                    found.append(item)
            else:
                _collect_secrets(item, found, depth + 1)
    elif type(value) is list:
        for item in value:
            _collect_secrets(item, found, depth + 1)
