"""What a tool call's input looks like once stored: secrets masked by their key (and a few credential
shapes by their text), everything else as it came, never more than 16 KB."""

from __future__ import annotations

import json

from audit.services import INPUT_MAX_BYTES, bounded_input, mask_secrets


def test_it_masks_values_under_secret_keys_at_any_depth():
    value = {
        "url": "https://example.org",
        "headers": {"Authorization": "Basic dXNlcjpwYXNz", "Accept": "application/json", "Cookie": "sid=abc"},
        "accounts": [{"name": "db", "password": "hunter2"}, {"name": "api", "api_key": "k-1"}],
        "nested": [[{"client_secret": "s-1", "note": "fine"}]],
    }
    assert mask_secrets(value) == {
        "url": "https://example.org",
        "headers": {"Authorization": "***", "Accept": "application/json", "Cookie": "***"},
        "accounts": [{"name": "db", "password": "***"}, {"name": "api", "api_key": "***"}],
        "nested": [[{"client_secret": "***", "note": "fine"}]],
    }


def test_it_matches_key_names_whatever_their_case_and_spelling():
    names = ["token", "ACCESS_TOKEN", "X-Auth-Token", "refreshToken", "Password", "passwd", "pwd", "secret",
             "clientSecret", "key", "KEY", "api_key", "apikey", "ApiKey", "apiKey", "x-api-key", "private_key",
             "privateKey", "aws_access_key", "sshKey", "authorization", "Proxy-Authorization", "auth", "cookie",
             "Set-Cookie", "credential", "credentials", "gcpCredentials", "passphrase", "bearer",
             "signature"]  # fmt: skip
    masked = mask_secrets({name: "v" for name in names})
    assert masked == {name: "***" for name in names}


def test_it_leaves_keys_that_merely_resemble_secrets():
    value = {"path": "a.txt", "keyword": "salut", "keys": ["a", "b"], "author": "Ann", "monkeys": 3,
             "content": "plain text", "count": 2, "flags": [True, None, 1.5], "description": "key facts"}  # fmt: skip
    assert mask_secrets(value) == value


def test_it_masks_a_whole_value_under_a_secret_key_even_a_structure():
    assert mask_secrets({"credentials": {"user": "u", "pass": "p"}, "tokens": ["a", "b"]}) == {
        "credentials": "***", "tokens": "***"
    }


def test_it_masks_credentials_written_inside_text():
    command = "curl -H 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc' https://x --key cdk_" + "A" * 43
    masked = mask_secrets({"command": command, "args": ["sk-ant-api03-" + "x" * 30]})
    assert masked == {"command": "curl -H 'Authorization: Bearer ***' https://x --key ***", "args": ["***"]}


def test_it_does_not_change_the_value_it_was_given():
    value = {"token": "t", "items": [{"secret": "s"}]}
    mask_secrets(value)
    assert value == {"token": "t", "items": [{"secret": "s"}]}


def test_a_small_input_is_stored_as_it_is_masked():
    assert bounded_input({"path": "a.txt", "token": "t"}) == {"path": "a.txt", "token": "***"}
    assert bounded_input({}) == {}


def test_a_huge_input_is_stored_truncated_with_a_marker_and_its_secrets_masked():
    value = {"password": "hunter2-" * 10, "content": 'line "quoted" \\ é\n' * 5000}
    whole = json.dumps(mask_secrets(value))
    stored = bounded_input(value)
    assert stored["truncated"] is True and stored["bytes"] == len(whole)
    assert whole.startswith(stored["head"]) and len(stored["head"]) > INPUT_MAX_BYTES // 3
    assert len(json.dumps(stored)) <= INPUT_MAX_BYTES
    assert "hunter2" not in json.dumps(stored)


def test_text_postgresql_refuses_is_made_storable():
    assert bounded_input({"a\x00b": "nul\x00here", "odd": "\ud800", "big": float("inf")}) == {
        "a\ufffdb": "nul\ufffdhere", "odd": "?", "big": "inf"
    }
