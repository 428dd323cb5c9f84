"""Schemathesis hooks for zsm's API documents (loaded with SCHEMATHESIS_HOOKS).

authsvc's OpenAPI names two string formats that no JSON Schema pattern can
express (docs/auth.md, "Identity rules"):

  zsm-identity      an identity that normalizes (login, lookup)
  zsm-new-identity  one that a sign-up also accepts (one script per part, no U+FFFD)

Schemathesis draws values of these formats from the strategies below. The
fixed samples come from the Go test (tests/apifuzz), which takes the valid
inputs of spec/vectors/identity.json and sorts them with srpgroup itself, and
writes them to the file named by ZSM_APIFUZZ_IDENTITIES. Generated ones are
ASCII, which normalizes and passes the script rule by construction, with
case changes and surrounding white space for login.

Values that are not identities (wrong type, empty) still come from
Schemathesis' negative testing; an identity that does not normalize is
covered by the vectors, not by guessing here.

In negative testing Schemathesis counts any string as violating a format it
does not know, so a drawn string that happens to be a good identity
("]¥ûe\t" trims and normalizes to a 6-byte identity) was reported as a
schema-violating request that the server accepted. `_might_be_identity`
tells it which strings could be identities: it errs towards "could be", so
a string it calls invalid is one the server refuses (control, format,
private-use or separator characters inside, white space inside, or under 3
or over 254 bytes once normalized), and the others are not sent as
negative cases.
"""

import json
import os
import unicodedata

import schemathesis
from hypothesis import strategies as st

with open(os.environ["ZSM_APIFUZZ_IDENTITIES"], encoding="utf-8") as f:
    _samples = json.load(f)

# 3 to 40 bytes of a local part, an optional domain: printable ASCII
# without spaces, so every one normalizes and is written in Latin only.
_ascii = st.from_regex(
    r"\A[A-Za-z0-9][A-Za-z0-9._+-]{2,39}(@[A-Za-z0-9][A-Za-z0-9-]{0,20}\.[A-Za-z]{2,6})?\Z",
    fullmatch=True,
)
# White space that normalization trims at either end.
_space = st.sampled_from(["", " ", "\t", "\u00a0", "\u3000", "\n"])

_login = st.one_of(
    st.sampled_from(_samples["login"]),
    st.builds(lambda a, b, c: a + b + c, _space, _ascii, _space),
)
_signup = st.one_of(st.sampled_from(_samples["signup"]), _ascii)

schemathesis.openapi.format("zsm-identity", _login)
schemathesis.openapi.format("zsm-new-identity", _signup)


# The White_Space characters normalization trims (docs/auth.md).
_WHITE_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
# Never part of an identity: controls, format characters, surrogates,
# private use, separators (L, M, N, P and S are allowed; unassigned code
# points, Cn, may be assigned in the server's newer Unicode, so they count
# as "could be").
_NEVER = {"Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Zp"}


def _might_be_identity(value):
    if not isinstance(value, str):
        return False
    trimmed = value.strip(_WHITE_SPACE)
    normal = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", trimmed).casefold())
    try:
        size = len(normal.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate
        return False
    if not 3 <= size <= 254:
        return False
    return all(ch not in _WHITE_SPACE and unicodedata.category(ch) not in _NEVER for ch in normal)


# Schemathesis 4.32.5 (the pinned version) builds its negative-case
# validator from STANDARD_FORMATS and _standard_format_check in this module;
# a custom format not in the set is "always invalid". Teach it ours. A newer
# Schemathesis that moved these fails here, loudly, rather than letting the
# false positives back.
from schemathesis.specs.openapi import negative as _negative  # noqa: E402

_OURS = {"zsm-identity": _might_be_identity, "zsm-new-identity": _might_be_identity}
_standard_check = _negative._standard_format_check
_negative.STANDARD_FORMATS = _negative.STANDARD_FORMATS | frozenset(_OURS)
_negative._standard_format_check = lambda name: _OURS.get(name) or _standard_check(name)
