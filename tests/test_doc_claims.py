"""The statements of docs/ and the README that can be checked against the code, checked:
files they point to exist, every setting's documented default is the hub's, the CSP they
quote is the one the pages are sent with, the welcome's documented fields are the ones it
carries, the HTTP statuses listed are the vocabulary's, the reasons of participant_left
are the ones the hub writes, the page routes are the served ones, and the browser
client's timings are the documented ones. (Close and error codes: tests/test_errors.py.)"""

from __future__ import annotations

import re
from pathlib import Path

from handlers.pages import routes as page_routes
from hub.config import Settings
from hub.errors import HTTP_STATUS
from hub.event_data import Welcome
from tests.support import ROOT

DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
EXTENSIONS = ("py", "md", "js", "mjs", "sql", "txt", "toml", "html", "css")
# A path with a directory, in backticks or as a markdown link target.
PATH = re.compile(r"(?:`|\]\()((?:\.\./|\./)?[\w.-]+/[\w./-]*\.(?:" + "|".join(EXTENSIONS) + r"))[`)#]")


def text(name: str) -> str:
    return (ROOT / name).read_text()


def test_every_file_the_docs_point_to_exists() -> None:
    missing = []
    for page in DOCS:
        for ref in PATH.findall(page.read_text()):
            if "…" in ref or "*" in ref:
                continue
            candidates = [(page.parent / ref).resolve(), (ROOT / ref).resolve()]
            if not any(c.exists() and ROOT in c.parents for c in candidates):
                missing.append(f"{page.name}: {ref}")
    assert not missing, missing


def _setting_rows() -> dict[str, str]:
    """`HUB_X` -> its documented default, from every table of docs/ and the README."""
    rows: dict[str, str] = {}
    for page in DOCS:
        for line in page.read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 3 or not cells[0].startswith("`"):
                continue
            names = re.findall(r"`([A-Z][A-Z_]+)`", cells[0])
            defaults = [d.strip().strip("`") for d in cells[1].split(" / ")]
            if names and len(defaults) == len(names):
                rows.update(zip(names, defaults, strict=True))
    return rows


def _shown(value: object) -> str:
    if value is None or value == [] or value == {} or value == "":
        return "unset"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_every_documented_default_is_the_hubs() -> None:
    documented = _setting_rows()
    hub = Settings(dev_mode=True)  # defaults, with those derived from others filled in
    wrong = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if not isinstance(alias, str) or alias not in documented or alias == "HUB_DEV":
            continue
        shown = documented[alias]
        if shown in ("random", "(empty: any)") or "×" in shown or "<" in shown:  # described
            continue
        value = getattr(hub, name)
        if shown != _shown(value) and not (value is False and shown == "unset"):
            wrong[alias] = (shown, getattr(hub, name), name)
    assert not wrong, wrong
    assert {"HUB_RESTART_GRACE", "HUB_INVITE_TOKEN_TTL", "HUB_PRESENCE_GRACE"} <= set(documented)


def test_the_quoted_csp_is_the_one_sent() -> None:
    from handlers import pages

    quoted = re.search(r"`Content-Security-Policy: ([^`]+)`", text("docs/browser.md"))
    assert quoted, "docs/browser.md quotes the pages' Content-Security-Policy"
    assert quoted.group(1) == pages._HEADERS["Content-Security-Policy"]


def test_the_welcome_row_lists_every_field_it_carries() -> None:
    row = next(line for line in text("docs/protocol.md").splitlines() if line.startswith("| `welcome` |"))
    documented = set(re.findall(r"`(\w+)`", row.split("|")[3]))
    fields = set(Welcome.model_fields)
    assert fields - documented == set(), fields - documented
    # Besides the fields: those of a participant entry and the event types named.
    assert documented - fields <= {"participant_id", "name", "prompt", "announcement"}, documented - fields


def test_the_http_statuses_listed_are_the_vocabularys() -> None:
    paragraph = text("docs/protocol.md").split("## HTTP API", 1)[1].split("\n\n", 2)[1]
    listed = {int(n) for n in re.findall(r"\b([45]\d\d)\b", paragraph)}
    assert listed == set(HTTP_STATUS.values()), (listed, set(HTTP_STATUS.values()))


def test_the_reasons_of_participant_left_are_the_ones_written() -> None:
    from typing import get_args

    from hub import attendance, presence_recovery
    from hub.event_data import Presence

    rows = text("docs/protocol.md").splitlines()
    row = next(line for line in rows if line.startswith("| `participant_left` |"))
    documented = set(re.findall(r"`reason: (\w+)`", row))
    modelled = {a for a in get_args(Presence.model_fields["reason"].annotation) for a in get_args(a) or [a]}
    written = {presence_recovery.HUB_RESTART}
    written |= set(re.findall(r'reason="(\w+)"', Path(attendance.__file__).read_text()))
    assert documented == written == modelled - {type(None)}, (documented, written, modelled)


def test_the_page_routes_are_the_documented_ones() -> None:
    table = text("docs/browser.md").split("| URL | what |", 1)[1].split("\n\n", 1)[0]
    documented = {re.sub(r"\[.*", "", m) for m in re.findall(r"^\| `([^`]+)`", table, re.M)}
    served = {getattr(r, "path", "") for r in page_routes}
    served = {re.sub(r"\{(\w+)\}", r"<\1>", p) if "{" in p else p for p in served}
    documented = {d.replace("…", "") for d in documented}
    assert {p for p in served if p != "/static"} <= documented, (served, documented)


def test_the_browser_clients_timings_are_the_documented_ones() -> None:
    client = text("static/hub-client.js")
    page = text("docs/browser.md")
    restart = int(re.search(r"export const RESTART_MAX_MS = (\d+);", client).group(1))  # type: ignore[union-attr]
    assert f"within {restart // 1000} s" in page
    assert "2 * interval + 5000" in client and "two intervals plus 5 s" in page
    assert "Math.min(1000, interval)" in client and "checked every second" in page
