"""Bearer tokens on the real daemon's API: 401 without, 403 below the role, probes stay open."""

from __future__ import annotations

from collections.abc import Iterator
import time
from pathlib import Path

import httpx
import pytest
import yaml

from .daemon_process import DaemonProcess

VIEWER = "viewer-token-0123456789abcdef"
EDITOR = "editor-token-0123456789abcdef"
FROM_FILE = "file-token-0123456789abcdef01"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    directory = tmp_path_factory.mktemp("auth")
    (directory / "tokens.yaml").write_text(yaml.safe_dump({"tokens": [
        {"name": "from-file", "token": FROM_FILE, "tenant": "default", "role": "admin"}]}))
    config = {"auth": {"tokens": [{"name": "vic", "token": VIEWER, "role": "viewer"},
                                  {"name": "eddie", "token": EDITOR, "role": "editor"}],
                       "token_file": str(directory / "tokens.yaml")}}
    with DaemonProcess(directory, config) as process:
        yield process


def call(daemon: DaemonProcess, method: str, path: str, token: str | None = None, **kwargs: object) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{daemon.api_url}{path}", headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]


SILENCE = {"matchers": [{"name": "service.name", "value": "x", "isRegex": False}],
           "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z", "createdBy": "t", "comment": "c"}


def test_probes_need_no_token(daemon: DaemonProcess) -> None:
    assert call(daemon, "GET", "/healthz").status_code == 200
    assert call(daemon, "GET", "/readyz").status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/services", "/api/v1/alerts", "/metrics", "/api/v1/silences",
                                  "/api/v1/label/service.name/values"])
def test_no_or_wrong_token_is_401(daemon: DaemonProcess, path: str) -> None:
    missing = call(daemon, "GET", path)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["error"].startswith("missing bearer token")
    wrong = call(daemon, "GET", path, "not-a-valid-token-at-all-xx")
    assert wrong.status_code == 401 and wrong.json()["error"].startswith("invalid token")


def test_roles(daemon: DaemonProcess) -> None:
    assert call(daemon, "GET", "/api/v1/alerts", VIEWER).status_code == 200
    assert call(daemon, "GET", "/api/v1/label/service.name/values", VIEWER).json()["status"] == "success"
    refused = call(daemon, "POST", "/api/v1/silences", VIEWER, json=SILENCE)
    assert refused.status_code == 403 and "needs editor" in refused.json()["error"]
    assert call(daemon, "POST", "/api/v1/silences", EDITOR, json=SILENCE).status_code == 200
    assert call(daemon, "POST", "/api/v1/silences", FROM_FILE, json=SILENCE).status_code == 200


def test_tokens_never_reach_the_log(daemon: DaemonProcess) -> None:
    call(daemon, "GET", "/api/v1/alerts", "not-a-valid-token-at-all-xx")
    text = "\n".join(daemon.log)
    for token in (VIEWER, EDITOR, FROM_FILE, "not-a-valid-token-at-all-xx"):
        assert token not in text


def test_a_bad_token_file_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "tokens.yaml").write_text("tokens: [{token: short}]\n")
    process = DaemonProcess(tmp_path, {"auth": {"token_file": str(tmp_path / "tokens.yaml")}})
    with pytest.raises(RuntimeError, match="at least 16 characters"):
        process.start(timeout=20)
    assert "short" not in "\n".join(process.log)


def test_security_headers_and_body_limit(daemon: DaemonProcess) -> None:
    answer = call(daemon, "GET", "/api/v1/alerts", VIEWER)
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in answer.headers
    huge = httpx.post(f"{daemon.api_url}/api/v1/silences", content=b"x" * (5 * 1024 * 1024), timeout=10,
                      headers={"content-type": "application/json", "authorization": f"Bearer {EDITOR}"})
    assert huge.status_code == 413 and "api.max_request_body_size_mib" in huge.json()["error"]


def test_audit_trail_of_changes_and_refusals(daemon: DaemonProcess) -> None:
    before = time.time() - 1
    created = call(daemon, "POST", "/api/v1/silences", EDITOR, json=SILENCE).json()["silenceID"]
    call(daemon, "DELETE", f"/api/v1/silences/{created}", EDITOR)
    call(daemon, "POST", "/api/v1/silences", VIEWER, json=SILENCE)  # 403
    call(daemon, "GET", "/api/v1/alerts", "not-a-valid-token-at-all-xx")  # 401
    call(daemon, "GET", "/api/v1/silences/no-such-id", VIEWER)  # 404 on an object route
    assert call(daemon, "GET", "/api/v1/audit", VIEWER).status_code == 403
    assert call(daemon, "GET", "/api/v1/audit", EDITOR).status_code == 403
    answer = call(daemon, "GET", "/api/v1/audit", FROM_FILE, params={"start": str(before)})
    assert answer.status_code == 200, answer.text
    entries = answer.json()["entries"]
    seen = {(e["actor"], e["action"], e["outcome"], e["status"]) for e in entries}
    assert ("eddie", "POST /api/v1/silences", "ok", 200) in seen
    assert ("eddie", "DELETE /api/v1/silences/{id}", "ok", 200) in seen
    assert ("vic", "POST /api/v1/silences", "refused", 403) in seen
    assert ("anonymous", "GET /api/v1/alerts", "refused", 401) in seen
    assert ("vic", "GET /api/v1/silences/{id}", "refused", 404) in seen
    deleted = next(e for e in entries if e["action"] == "DELETE /api/v1/silences/{id}")
    assert deleted["target"] == f"id={created}" and deleted["tenant"] == "default"
    only_posts = call(daemon, "GET", "/api/v1/audit", FROM_FILE,
                      params={"action": "POST /api/v1/silences", "start": str(before)}).json()["entries"]
    assert {e["action"] for e in only_posts} == {"POST /api/v1/silences"}
    text = str(entries)
    for token in (VIEWER, EDITOR, FROM_FILE, "not-a-valid-token-at-all-xx"):
        assert token not in text


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    config = {"api": {"endpoint": "127.0.0.1:0", "rate_limit": {"requests_per_second": 2, "burst": 5}}}
    with DaemonProcess(tmp_path, config) as process:
        statuses = [call(process, "GET", "/api/v1/services").status_code for _ in range(12)]
        assert statuses[:5] == [200] * 5 and 429 in statuses
        limited = call(process, "GET", "/api/v1/services")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert call(process, "GET", "/healthz").status_code == 200  # probes are never limited


def test_a_public_bind_without_tokens_refuses_to_start_and_says_why(tmp_path: Path) -> None:
    process = DaemonProcess(tmp_path, {"api": {"endpoint": "0.0.0.0:0"}})
    with pytest.raises(RuntimeError) as caught:
        process.start(timeout=20)
    message = str(caught.value)
    assert "api.endpoint: '0.0.0.0:0' is not a loopback address and no auth.tokens are configured" in message
    assert process.process is not None and process.process.wait(10) == 2


def test_a_public_bind_with_tokens_starts(tmp_path: Path) -> None:
    config = {"api": {"endpoint": "0.0.0.0:0"}, "auth": {"tokens": [{"token": VIEWER, "role": "viewer"}]}}
    with DaemonProcess(tmp_path, config) as process:
        port = process.api_url.rsplit(":", 1)[1]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200


def test_sighup_reloads_the_token_file_and_keeps_the_tokens_when_the_new_file_is_bad(tmp_path: Path) -> None:
    """Rotating a token needs no restart; a bad or emptied file changes nothing (an empty one would open the API)."""
    import os
    import signal

    old, new = "rotated-out-0123456789abcdef", "rotated-in-0123456789abcdef0"
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(yaml.safe_dump([{"name": "ops", "token": old, "role": "admin"}]))
    with DaemonProcess(tmp_path, {"auth": {"token_file": str(tokens)}}) as daemon:
        assert daemon.process is not None

        def reload_with(text: str, entries: int) -> list[dict[str, object]]:
            tokens.write_text(text)
            os.kill(daemon.process.pid, signal.SIGHUP)  # type: ignore[union-attr]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # read as whichever token is current
                found = [e for t in (old, new) if (a := call(daemon, "GET", "/api/v1/audit?action=tokens.reload", t))
                         .status_code == 200 for e in a.json()["entries"]]
                if len(found) >= entries:
                    return found
                time.sleep(0.1)
            raise AssertionError(f"no tokens.reload entry number {entries} after SIGHUP")

        assert call(daemon, "GET", "/api/v1/alerts", old).status_code == 200
        (entry,) = reload_with(yaml.safe_dump([{"name": "ops", "token": new, "role": "admin"}]), 1)
        assert {k: entry[k] for k in ("actor", "action", "target", "outcome")} == {
            "actor": "SIGHUP", "action": "tokens.reload", "target": "auth.token_file", "outcome": "ok"}
        assert call(daemon, "GET", "/api/v1/alerts", old).status_code == 401
        assert call(daemon, "GET", "/api/v1/alerts", new).status_code == 200
        for bad, entries in (("tokens: [{token: short}]\n", 2), ("[]\n", 3)):
            latest = reload_with(bad, entries)[0]
            assert latest["outcome"] == "failed", latest
            assert call(daemon, "GET", "/api/v1/alerts", new).status_code == 200
            assert call(daemon, "GET", "/api/v1/alerts").status_code == 401
        log = "\n".join(daemon.log)
        assert "token reload refused" in log and "token file reloaded: 1 tokens" in log
        assert old not in log and new not in log and "short" not in log
