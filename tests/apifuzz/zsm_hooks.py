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
"""

import json
import os

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
