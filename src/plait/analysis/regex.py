"""Which regular expressions plait's Envoys accept: RE2 syntax and the program-size limit.

Envoy compiles every `safe_regex` with Google RE2 when it loads a route table and rejects
the whole table (a NACK) if one fails. Two rules, both checked against the real Envoy 1.40
binary (`envoy --mode validate`, see tests/unit/analysis/test_analysis_regex.py):

- the pattern must parse as RE2: no lookaround `(?!...)`, no backreferences `\\1`, no `\\Z`,
  repetition counts up to 1000 (nested ones too);
- its compiled program must not exceed the runtime value `re2.max_program_size.error_level`.
  Envoy's default is 100; plait's bootstrap sets Istio's 32768 (agent/bootstrap.py), so a
  pattern Istio accepts is accepted here too. The size Envoy counts is the one RE2 gives
  when the pattern's UTF-8 bytes are compiled as Latin-1 (`.{60}` is 124, `\\pL{20}` is
  144, not the 484 and 23924 of a UTF-8 compile), and so is its verdict on ranges (`[本-日]`
  passes), so the check compiles the same way.

An empty pattern is also refused (Envoy's RegexMatcher requires at least one character).
"""

from __future__ import annotations

import functools

import re2

MAX_PROGRAM_SIZE = 32768
"""`re2.max_program_size.error_level` in plait's Envoy bootstrap (Istio's value)."""

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
_OPTIONS.encoding = re2.Options.Encoding.LATIN1


@functools.lru_cache(maxsize=4096)
def envoy_regex_problem(pattern: str) -> str | None:
    """Why Envoy would reject `pattern` as a `safe_regex`, or None if it accepts it."""
    if not pattern:
        return "the regex is empty; Envoy needs at least one character (use prefix: '' to match anything)"
    try:
        compiled = re2.compile(pattern.encode("utf-8"), _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else str(exc)
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        return (
            f"Envoy (RE2) rejects the regex '{pattern}': {reason}. RE2 has no lookahead, "
            "lookbehind or backreferences; see https://github.com/google/re2/wiki/Syntax"
        )
    size = int(compiled.programsize)
    if size > MAX_PROGRAM_SIZE:
        return (
            f"the regex '{pattern}' is too complex for Envoy: RE2 program size {size} > "
            f"{MAX_PROGRAM_SIZE} (re2.max_program_size.error_level); simplify it, e.g. fewer "
            "or smaller bounded repetitions ('+' instead of '{1,1000}'), or split it"
        )
    return None
