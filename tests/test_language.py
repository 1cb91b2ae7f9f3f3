"""No English and no internal codes anywhere a person reads (issue #12 item 5).

Every role logs in and walks every page it can reach by following links from its start page (one page
per route shape, bounded), including the printable forms and the error pages; the text a person reads
(page text, button values, titles, placeholders, labels for screen readers) must hold no English word
from the list below and no internal code: component codes (GIAYDENGHI), decision and role codes
(request_supplement, mot_cua), diagram element ids (Activity_1d63nk5), ISO durations (PT4H), ISO dates,
Python values (None, True) or numbers in English format (100.0 %)."""
from __future__ import annotations

import re
from urllib.parse import urljoin, urlparse

import lxml.html
import pytest
from conftest import ROOT, open_task
from test_desk_lists import NOW, desk_day  # noqa: F401  (fixture)

from engine import catalog, dossiers

ROLES = ("mot_cua1", "chuyen_vien1", "lanh_dao_phong1", "lanh_dao1", "van_thu1", "manager1", "designer1", "admin1")

# English words that are not also Vietnamese words written without diacritics ("in", "do", "an", "to",
# "tin", "hay", "me", "no" are Vietnamese; "email", "online" and "file" are in common official use).
ENGLISH = """
the and of for with is are was not must should required invalid error errors failed failure success
step steps task tasks dossier dossiers unit units role roles approve approved reject rejected refuse refused
submit cancel save saved delete edit none null true false undefined nan page next previous login logout
password username search filter status received pending overdue deadline request supplement decision
result apology withdraw withdrawn unknown missing allowed permission forbidden found please click select
back home inbox settings designer manager assign assigned claim claimed release process version draft
published retired expired timer late due today tomorrow yes
""".split()
ENGLISH_PHRASES = ("at least", "not found", "no such", "too long", "too many")
_ENGLISH = re.compile(r"(?<![\wÀ-ỹ])(" + "|".join(map(re.escape, ENGLISH)) + r")(?![\wÀ-ỹ])", re.IGNORECASE)

ACRONYMS = {"UBND", "HĐND", "CCCD", "CMND", "TTHC", "BPMN", "CSV", "XLSX", "PDF", "SMS", "API", "URL", "QR",
            "TT", "NĐ", "CP", "BTTTT", "VPĐK", "GCN", "QĐ", "HTML", "ID", "XML", "UTC", "VNĐ"}
CODES = {
    "component or constant code": re.compile(r"(?<![\w.])[A-Z][A-Z0-9_]{5,}(?![\w.])"),
    "snake_case code": re.compile(r"(?<![\w/.-])[a-z]+_[a-z0-9_]+(?![\w/.-])"),
    "diagram element id": re.compile(r"\b(Activity|Gateway|Event|Flow|StartEvent|EndEvent|Task|Lane)_\w+"),
    "ISO duration": re.compile(r"\bP(?:\d+[YMWD])*T?\d+[HMSD]\b"),
    "ISO date": re.compile(r"\b\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2})?\b"),
    "English number": re.compile(r"\b\d+\.\d+\s?%"),
}

SKIP = re.compile(r"/dang-xuat|xuat=|\.csv|\.xlsx|\.bpmn|/tep/|/static/|/api/|/tai-ve|/tra-cuu")
MAX_PAGES = 120


def visible_text(html: str) -> list[str]:
    doc = lxml.html.fromstring(html)
    for bad in doc.xpath("//script|//style|//template|//textarea|//*[@hidden]|//*[@aria-hidden='true']"):
        bad.drop_tree()
    chunks = [doc.text_content()]
    for attr in ("title", "placeholder", "aria-label", "alt"):
        chunks += doc.xpath(f"//@{attr}")
    chunks += doc.xpath("//input[@type='submit' or @type='button']/@value")
    return [" ".join(str(c).split()) for c in chunks if str(c).strip()]


def offences(text: str) -> list[str]:
    found = [f"English '{m.group(0)}'" for m in _ENGLISH.finditer(text)]
    found += [f"English '{p}'" for p in ENGLISH_PHRASES if p in text.lower()]
    for name, pattern in CODES.items():
        for m in pattern.finditer(text):
            if name == "component or constant code" and m.group(0) in ACRONYMS:
                continue
            found.append(f"{name} '{m.group(0)}'")
    return found


def shape(url: str) -> str:
    """One page per route shape: dossier codes, ids and numbers collapse."""
    parsed = urlparse(url)
    path = re.sub(r"/(?=[^/]*\d)[^/]{4,}", "/#", parsed.path)   # keeps /in/01: each printed form is walked
    keys = "&".join(sorted(k.split("=")[0] for k in parsed.query.split("&") if k))
    return f"{path}?{keys}"


def walk(client, start: str) -> dict[str, list[str]]:
    seen, queue, problems = set(), [start], {}
    while queue and len(seen) < MAX_PAGES:
        url = queue.pop(0)
        if shape(url) in seen:
            continue
        seen.add(shape(url))
        r = client.get(url)
        assert r.status_code < 500, f"{url}: {r.status_code}"
        if r.status_code in (301, 302, 303):
            queue.append(r.headers["Location"])
            continue
        if "text/html" not in r.content_type:
            continue
        html = r.get_data(as_text=True)
        bad = [o for chunk in visible_text(html) for o in offences(chunk)]
        if bad:
            problems[url] = sorted(set(bad))
        for href in lxml.html.fromstring(html).xpath("//a/@href"):
            target = urljoin(url, href)
            parsed = urlparse(target)
            if parsed.netloc not in ("", "localhost") or SKIP.search(target) or href.startswith("#"):
                continue
            queue.append(parsed.path + (f"?{parsed.query}" if parsed.query else ""))
    return problems


@pytest.fixture
def busy_office(session, office, desk_day):  # noqa: F811
    """desk_day, plus a step with a request for another unit's opinion and an apology on record."""
    late = desk_day["qua-han"]
    task = open_task(session, late)
    dossiers.complete_task(session, actor_id=office[task.role], task_id=task.id, data={"decision": "approve"},
                           now=NOW)
    dossiers.issue_apology(session, actor_id=office["lanh_dao"], dossier_code=late.code, reason="Chờ xác minh",
                           new_due_at=NOW.replace(day=20), signed_by_id=office["lanh_dao"], now=NOW)
    xml = (ROOT / "processes/1.001612/v1.bpmn").read_text()   # a second version: the diff page is walked too
    catalog.submit_version(session, actor_id=None, procedure_code="1.001612",
                           bpmn=xml.replace('value="PT6H"', 'value="PT5H"'))
    session.commit()
    return desk_day


@pytest.mark.parametrize("username", ROLES)
def test_no_english_and_no_codes_on_any_page(app, session, office, busy_office, username):
    app.config["SESSION_COOKIE_SECURE"] = False
    app.config["MOTCUA_NOW"] = NOW.isoformat()
    client = app.test_client()
    page = client.get("/dang-nhap").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/dang-nhap", data={"username": username, "password": "matkhau-123", "csrf_token": token})
    assert r.status_code == 302
    problems = walk(client, r.headers["Location"])
    problems.update({u: p for u, p in walk(client, "/khong-co-trang-nay").items()})
    assert not problems, "\n".join(f"{u}: {', '.join(p)}" for u, p in problems.items())


def test_the_citizens_pages_and_the_login_page_too(client):
    problems = {}
    for url in ("/dang-nhap", "/tra-cuu", "/khong-co"):
        r = client.get(url)
        bad = [o for chunk in visible_text(r.get_data(as_text=True)) for o in offences(chunk)]
        if bad:
            problems[url] = bad
    assert not problems, problems


def test_the_checker_itself_catches_what_it_must():
    assert offences("Thiếu GIAYDENGHI") and offences("request_supplement") and offences("Thời hạn PT4H")
    assert offences("Activity_1d63nk5: lỗi") and offences("at least one file") and offences("100.0 %")
    assert offences("None") and offences("2026-11-27")
    assert not offences("Tiếp nhận hồ sơ UBND xã Tân Lạc, CCCD 017090001234, in phiếu, 100,0 %, 27/11/2026")


def _domain_errors(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _domain_errors(sub)


def test_every_refusal_the_engine_can_give_has_its_vietnamese_sentence():
    import importlib
    import pkgutil

    import engine
    from engine.errors import DomainError
    from webapp import i18n
    for mod in pkgutil.walk_packages(engine.__path__, "engine."):
        importlib.import_module(mod.name)
    codes = {DomainError.code} | {sub.code for sub in _domain_errors(DomainError)}
    assert codes - set(i18n.ERROR) == set()
    assert not offences(" ".join(i18n.ERROR.values()))


def test_an_unknown_field_refusal_is_still_told_in_vietnamese():
    from webapp import i18n
    for key, english in (("components", "at least one file"), ("whatever", "must not be empty"),
                         ("components.GIAYDENGHI", "not a component of this procedure")):
        text = i18n.field_message(key, english)
        assert not offences(text), text


def test_refused_forms_answer_in_vietnamese(app, session, office, desk_day):  # noqa: F811
    """The pages that come back when a form is refused: the messages next to the fields and on top."""
    app.config["SESSION_COOKIE_SECURE"] = False
    app.config["MOTCUA_NOW"] = NOW.isoformat()
    client = app.test_client()
    page = client.get("/dang-nhap").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/dang-nhap", data={"username": "mot_cua1", "password": "matkhau-123", "csrf_token": token})
    waiting, late = desk_day["cho-bo-sung"].code, desk_day["qua-han"].code
    posts = [(f"/ho-so/{waiting}/bo-sung", {"ghi-chu": ""}),                  # no file at all
             (f"/ho-so/{late}/xin-loi", {"reason": "", "new_due": "x"}),
             (f"/ho-so/{late}/rut", {"reason": ""}),
             (f"/ho-so/{waiting}/tra-ket-qua", {}),
             ("/tiep-nhan", {"thu-tuc": "1.001612"})]
    problems = {}
    for url, data in posts:
        r = client.post(url, data={**data, "csrf_token": token}, follow_redirects=True)
        assert r.status_code < 500, url
        bad = [o for chunk in visible_text(r.get_data(as_text=True)) for o in offences(chunk)]
        if bad:
            problems[url] = bad
    assert not problems, problems
