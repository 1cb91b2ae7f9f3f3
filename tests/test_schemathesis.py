"""Schemathesis drives every operation of our own openapi.json: no 5xx, every answer conforms."""
import shutil

import pytest
import schemathesis
from conftest import bearer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_app(sqlite_template, tmp_path_factory):
    """One SQLite office for the whole module (the contract does not depend on the backend; the
    behaviour behind it is tested on both in test_api.py)."""
    from sqlalchemy.orm import Session

    from engine import catalog
    from engine.access import directory
    from engine.store.db import make_engine
    from webapp import create_app

    tmp = tmp_path_factory.mktemp("fuzz")
    path = tmp / "db.sqlite3"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    eng = make_engine(url)
    with Session(eng) as s:
        directory.add_unit(s, "H40.1", "UBND xã Tân Lạc")
        directory.add_user(s, "canbo", "matkhau-123", [("H40.1", r) for r in
                                                   ("mot_cua", "chuyen_vien", "admin", "designer", "manager")])
        from conftest import ROOT
        catalog.load_processes(s, ROOT / "processes", actor_id=None)
        s.commit()
    eng.dispose()
    import os
    os.environ["MOTCUA_UPLOAD_DIR"] = str(tmp / "uploads")
    app = create_app({"DATABASE_URL": url, "TESTING": True, "SECRET_KEY": "fuzz", "PUBLIC_LOOKUP_LIMIT": 10_000})
    return app


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app)


@pytest.fixture(scope="module")
def auth_headers(fuzz_app):
    return bearer(fuzz_app.test_client(), "canbo")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi(case, auth_headers):
    case.call_and_validate(headers=auth_headers, checks=CHECKS)
