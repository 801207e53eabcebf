"""`python -m hub token` for operators, key rotation by `kid`, and the two start modes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import jwt

from tests.auth_support import SECRET, auth, token
from tests.support import ROOT, LiveClient, api


def run_hub(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("HUB_SECRET", "HUB_SECRETS", "HUB_DEV")}
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def cli_token(*args: str, **env: str) -> str:
    done = run_hub("token", *args, **env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_token_command_prints_a_token_with_the_claims_asked_for():
    printed = cli_token(
        "--account", "acme", "--user", "sarah", "--role", "instructor",
        "--session", "s1", "--session", "s2", "--ttl", "120", "--name", "Sarah Chen",
        HUB_SECRET=SECRET,
    )  # fmt: skip
    assert jwt.get_unverified_header(printed) == {"alg": "HS256", "kid": "default", "typ": "JWT"}
    claims = jwt.decode(printed, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "sarah" and claims["account"] == "acme" and claims["role"] == "instructor"
    assert claims["sessions"] == ["s1", "s2"] and claims["name"] == "Sarah Chen"
    assert abs(claims["exp"] - (time.time() + 120)) < 10


def test_token_command_explains_what_is_missing():
    no_secret = run_hub("token", "--account", "a", "--user", "u", "--role", "admin")
    assert no_secret.returncode == 2 and "HUB_SECRET" in no_secret.stderr and not no_secret.stdout
    unknown_kid = run_hub(
        "token", "--account", "a", "--user", "u", "--role", "admin", "--kid", "nope", HUB_SECRET=SECRET
    )
    assert unknown_kid.returncode == 2 and "no signing key with id 'nope'" in unknown_kid.stderr
    bad_role = run_hub("token", "--account", "a", "--user", "u", "--role", "root", HUB_SECRET=SECRET)
    assert bad_role.returncode == 2 and "--role" in bad_role.stderr


async def test_a_printed_token_works_over_http_and_websocket(hub_factory):
    hub = hub_factory(HUB_DEV="0", HUB_SECRET=SECRET)
    printed = cli_token(
        "--account", "acme", "--user", "sarah", "--role", "instructor", "--session", "s1",
        HUB_SECRET=SECRET,
    )  # fmt: skip
    body = {"session_id": "s1", "title": "Morning", "instructor": "Sarah"}
    created = await api(hub, "POST", "/api/v2/sessions/create", body, headers=auth(printed))
    assert created.status_code == 201 and created.json()["account_id"] == "acme"
    assert (await api(hub, "POST", "/api/v2/session/s1/start", headers=auth(printed))).status_code == 200
    client = await LiveClient.connect(hub.ws_url("s1", "instructor", token=printed))
    assert client.welcome["data"]["status"] == "in_progress"
    assert client.welcome["actor"]["user_id"] == "sarah"
    await client.close()
    # the sessions claim: a second session of the same account is not there for this token
    other = {"session_id": "s2", "title": "Evening", "instructor": "Sarah"}
    admin = auth(token(account="acme", role="admin"))
    assert (await api(hub, "POST", "/api/v2/sessions/create", other, headers=admin)).status_code == 201
    assert (await api(hub, "GET", "/api/v2/session/s2", headers=auth(printed))).status_code == 404


async def test_keys_rotate_by_kid(hub_factory):
    keys = "new:secret-of-the-new-key-0123456789abcdef,old:secret-of-the-old-key-0123456789abcdef"
    hub = hub_factory(HUB_DEV="0", HUB_SECRETS=keys)
    args = ("--account", "acme", "--user", "u", "--role", "admin")
    for kid in ("new", "old"):
        signed = cli_token(*args, "--kid", kid, HUB_SECRETS=keys)
        assert jwt.get_unverified_header(signed)["kid"] == kid
        response = await api(hub, "GET", "/api/v2/sessions", headers=auth(signed))
        assert response.status_code == 200, (kid, response.text)
    # the first configured key signs by default: put the newest first
    assert jwt.get_unverified_header(cli_token(*args, HUB_SECRETS=keys))["kid"] == "new"
    retired = token(role="admin", kid="gone", key="secret-of-a-retired-key-0123456789abcdef")
    response = await api(hub, "GET", "/api/v2/sessions", headers=auth(retired))
    assert response.status_code == 401 and "'gone' is not known" in response.json()["error"]["message"]
    swapped = token(role="admin", kid="old", key="secret-of-the-new-key-0123456789abcdef")
    assert (await api(hub, "GET", "/api/v2/sessions", headers=auth(swapped))).status_code == 401


def test_without_dev_mode_the_hub_refuses_to_start_without_a_secret(database):
    done = run_hub("serve", "--port", "1", "--no-links", HUB_DEV="0", DATABASE_URL=database)
    assert done.returncode == 2
    assert "HUB_SECRET is not set" in done.stderr and "HUB_DEV=1" in done.stderr
    assert "Traceback" not in done.stderr


async def test_dev_mode_is_open_and_says_so(hub):
    assert "DEV MODE" in hub.logs() and "OPEN" in hub.logs()
    response = await api(hub, "GET", "/api/v2/sessions")
    assert response.status_code == 200
    # a token, when given, is still checked
    forged = token(key="not-the-secret-0123456789abcdef0123456789")
    assert (await api(hub, "GET", "/api/v2/sessions", headers=auth(forged))).status_code == 401
