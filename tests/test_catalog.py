"""Catalog administration: versions published, scheduled and retired; legal bases expiring; JSON round trip."""
from datetime import date
from pathlib import Path

import pytest
from conftest import receive, vn
from sqlalchemy import func, select

from engine import catalog
from engine.errors import InvalidInput, ProcedureNotAccepting, VersionImmutable
from engine.store.models import Procedure

ROOT = Path(__file__).resolve().parent.parent


def test_a_scheduled_version_is_used_from_its_date_and_a_retired_one_no_more(session, office):
    xml = (ROOT / "processes/1.001612/v1.bpmn").read_text().replace('value="PT4H"', 'value="PT3H"')
    v2, _ = catalog.submit_version(session, actor_id=None, procedure_code="1.001612", bpmn=xml, notes="v2")
    catalog.publish_version(session, actor_id=None, procedure_code="1.001612", number=v2.number, effective_from=date(2026, 12, 1))
    assert receive(session, office, at=vn(2026, 11, 30, 9)).version.number == 1
    assert receive(session, office, at=vn(2026, 12, 1, 9)).version.number == 2
    catalog.retire_version(session, actor_id=None, procedure_code="1.001612", number=2)
    assert receive(session, office, at=vn(2026, 12, 2, 9)).version.number == 1
    with pytest.raises(VersionImmutable):
        catalog.retire_version(session, actor_id=None, procedure_code="1.001612", number=2)
    session.rollback()
    catalog.retire_version(session, actor_id=None, procedure_code="1.001612", number=1)
    with pytest.raises(ProcedureNotAccepting):
        receive(session, office, at=vn(2026, 12, 2, 10))


def test_legal_basis_warnings_and_expiry(session, office):
    catalog.update_legal_document(session, actor_id=None, number="168/2025/NĐ-CP", expires_on=date(2026, 12, 15))
    warnings = catalog.basis_warnings(session, date(2026, 11, 26))
    assert [(w["procedure"].code, w["days_left"], w["expired"]) for w in warnings] == [("1.001612", 19, False)]
    assert catalog.basis_warnings(session, date(2026, 12, 16))[0]["expired"] is True
    with pytest.raises(ProcedureNotAccepting):
        receive(session, office, at=vn(2026, 12, 15, 9))
    assert receive(session, office, at=vn(2026, 12, 14, 9)).code
    with pytest.raises(InvalidInput):
        catalog.update_legal_document(session, actor_id=None, number="168/2025/NĐ-CP", expires_on=date(2020, 1, 1))


def test_catalog_export_import_round_trip_and_all_or_nothing(session, office):
    exported = catalog.export_catalog(session)
    assert [p["code"] for p in exported] == ["1.001193", "1.001612", "1.009994"]
    assert exported[2]["versions"][0]["status"] == "published" and exported[2]["legal_bases"][1]["number"]
    changed = [dict(exported[0], name="Thủ tục đăng ký khai sinh (cập nhật)")]
    assert catalog.import_catalog(session, actor_id=None, data=changed) == ["1.001193"]
    assert catalog.get_procedure(session, "1.001193").name.endswith("(cập nhật)")
    before = session.scalar(select(func.count()).select_from(Procedure))
    bad = [dict(exported[1], code="1.555555"), dict(exported[1], code="9.x", level="quan")]
    with pytest.raises(InvalidInput) as err:
        catalog.import_catalog(session, actor_id=None, data=bad)
    session.rollback()
    assert "9.x" in err.value.errors
    assert session.scalar(select(func.count()).select_from(Procedure)) == before


def test_version_diff_names_changed_added_and_removed_steps(session, office):
    xml = (ROOT / "processes/1.001612/v1.bpmn").read_text()
    xml = xml.replace('value="PT6H"', 'value="PT5H"').replace('name="Xem xét, trình ký"', 'name="Xem xét"')
    v2, _ = catalog.submit_version(session, actor_id=None, procedure_code="1.001612", bpmn=xml)
    diff = catalog.diff_versions(session, "1.001612", 1, v2.number)
    assert diff["added"] == [] and diff["removed"] == []
    assert v2.meta["legal_bases"] == ["59/2020/QH14", "168/2025/NĐ-CP"]
    assert {c["step"]: c["changes"] for c in diff["changed"]} == {
        "Task_KyDuyet": {"duration": ("PT6H", "PT5H")},
        "Task_XemXet": {"name": ("Xem xét, trình ký", "Xem xét")},
    }


def test_a_district_level_version_cannot_take_effect_after_the_district_level_was_abolished(session, office):
    data = {"code": "2.000999", "name": "Thủ tục cấp huyện cũ", "field": "Hộ tịch", "level": "huyen",
            "statutory_days": 3, "online_level": "mot_phan",
            "components": [{"code": "DON", "name": "Đơn đề nghị", "required": True, "copies": 1}]}
    catalog.create_procedure(session, actor_id=None, data=data)
    xml = (ROOT / "processes/1.001612/v1.bpmn").read_text()
    v, _ = catalog.submit_version(session, actor_id=None, procedure_code="2.000999", bpmn=xml)
    with pytest.raises(InvalidInput) as refused:
        catalog.publish_version(session, actor_id=None, procedure_code="2.000999", number=v.number,
                                effective_from=date(2025, 7, 1))
    assert refused.value.code == "district_level_abolished" and "01/07/2025" in refused.value.message
    session.rollback()
    assert session.scalar(select(func.count()).where(Procedure.code == "2.000999")) == 1
    # Before the change it was legal (a version for the dossiers received then).
    catalog.publish_version(session, actor_id=None, procedure_code="2.000999", number=v.number,
                            effective_from=date(2025, 6, 30))


def test_a_legal_document_listed_twice_is_refused_and_nothing_is_written(session, office):
    """Found by schemathesis: the same number twice among the legal bases broke a unique index (500)."""
    before = session.scalar(select(func.count()).select_from(Procedure))
    basis = {"number": "59/2020/QH14", "title": "Luật Doanh nghiệp", "effective_from": "2021-01-01"}
    with pytest.raises(InvalidInput) as err:
        catalog.create_procedure(session, actor_id=None, data={
            "code": "1.999777", "name": "Thủ tục thử", "field": "Thử", "level": "xa", "statutory_days": 3,
            "online_level": "mot_phan", "components": [{"code": "DON", "name": "Đơn"}],
            "legal_bases": [basis, {**basis}]})
    assert err.value.errors == {"legal_bases.1.number": "this legal document is already listed"}
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Procedure)) == before
