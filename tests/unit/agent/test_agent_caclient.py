"""Parsing the CA's answers: anything malformed is a ValueError, never a crash elsewhere."""

from __future__ import annotations

from typing import Any

import pytest

from plait.agent.caclient import _error_text, parse_bundle, parse_issued

GOOD = {"certChain": ["LEAF", "INT"], "trustBundle": ["ROOT"], "signer": "ab", "expiresAt": "x"}


def test_a_good_answer_is_read_in_order() -> None:
    issued = parse_issued(GOOD)

    assert issued.chain_pem == (b"LEAF", b"INT")
    assert issued.bundle_pem == (b"ROOT",)
    assert issued.signer == "ab"
    assert parse_bundle({"trustBundle": ["R1", "R2"], "signer": "cd"}).roots_pem == (b"R1", b"R2")


@pytest.mark.parametrize(
    "doc",
    [
        None,
        [],
        "text",
        {},
        GOOD | {"certChain": []},
        GOOD | {"certChain": "LEAF"},
        GOOD | {"certChain": [1]},
        GOOD | {"trustBundle": None},
        GOOD | {"signer": ""},
        {k: v for k, v in GOOD.items() if k != "signer"},
    ],
)
def test_a_malformed_answer_is_a_value_error(doc: Any) -> None:
    with pytest.raises(ValueError):
        parse_issued(doc)


def test_the_cas_error_message_is_what_is_reported() -> None:
    assert _error_text('{"error": "identity mismatch"}') == "identity mismatch"
    assert _error_text("<html>gateway</html>") == "<html>gateway</html>"
    assert _error_text("") == "(empty body)"
    assert _error_text('{"other": 1}') == '{"other": 1}'
