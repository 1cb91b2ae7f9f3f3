"""Regenerates processes/*/v1.bpmn from the descriptions below (python tools/gen_processes.py).

Each shipped procedure follows the usual commune internal process: the one-stop desk receives
and forwards, a specialist appraises (and may request supplementation once, or refuse), leaders
review and sign, the clerk registers and stamps the result. Durations add up to the statutory time.

Every flow out of a step, or out of the decision gateway after it, is named for what it does: the
name is the button the step's page shows for that decision ("Trình ký", "Ký duyệt", "Vào sổ, chuyển
trả"). The signing step attaches the signed result (`result = file`), the clerk's step records its
number and signing date in the register (`result = number`): docs/bpmn-conventions.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bpmn_builder import Flow, Node, Process, render  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent / "processes"
SUPPLEMENT_MSG = {"Message_supplement_received": "supplement_received"}
LANES_FULL = [
    ("Lane_mot_cua", "Một cửa", "mot_cua"),
    ("Lane_chuyen_vien", "Chuyên viên", "chuyen_vien"),
    ("Lane_lanh_dao_phong", "Lãnh đạo phòng", "lanh_dao_phong"),
    ("Lane_lanh_dao", "Lãnh đạo cơ quan", "lanh_dao"),
    ("Lane_van_thu", "Văn thư", "van_thu"),
]


def standard(pid: str, name: str, durations: dict[str, str], review_by_head: bool, names: dict[str, str]) -> Process:
    lanes = [lane for lane in LANES_FULL if review_by_head or lane[2] != "lanh_dao_phong"]
    n = [
        Node("StartEvent_TiepNhan", "startEvent", "Hồ sơ được tiếp nhận", "Lane_mot_cua", 0),
        Node("Task_TiepNhan", "userTask", names["receive"], "Lane_mot_cua", 1, {"duration": durations["receive"]}),
        Node("Task_ThamDinh", "userTask", names["appraise"], "Lane_chuyen_vien", 2, {"duration": durations["appraise"]}),
        Node("Gateway_ThamDinh", "exclusiveGateway", "Kết quả thẩm định?", "Lane_chuyen_vien", 3),
        Node("Event_ChoBoSung", "intermediateCatchEvent", "Nhận hồ sơ bổ sung", "Lane_mot_cua", 3,
             message="Message_supplement_received"),
        # A refusal is the leader's (form 03, L11): the specialist proposes it, the leader signs it
        # or sends the dossier back to appraisal.
        Node("Task_KyTuChoi", "userTask", "Ký văn bản từ chối giải quyết (mẫu 03)", "Lane_lanh_dao", 4.2,
             {"duration": durations.get("refuse", "PT4H")}),
        Node("Gateway_KyTuChoi", "exclusiveGateway", "Ký từ chối?", "Lane_lanh_dao", 5.2),
        Node("EndEvent_TuChoi", "endEvent", "Từ chối giải quyết", "Lane_lanh_dao", 6.2),
    ]
    f = [
        Flow("Flow_start", "StartEvent_TiepNhan", "Task_TiepNhan"),
        Flow("Flow_forward", "Task_TiepNhan", "Task_ThamDinh", "Chuyển chuyên viên thẩm định"),
        Flow("Flow_appraised", "Task_ThamDinh", "Gateway_ThamDinh"),
        Flow("Flow_supplement", "Gateway_ThamDinh", "Event_ChoBoSung", "Yêu cầu bổ sung",
             'decision == "request_supplement"'),
        Flow("Flow_supplemented", "Event_ChoBoSung", "Task_ThamDinh"),
        Flow("Flow_refuse", "Gateway_ThamDinh", "Task_KyTuChoi", "Đề xuất từ chối", 'decision == "refuse"'),
        Flow("Flow_refusal_signed", "Task_KyTuChoi", "Gateway_KyTuChoi"),
        Flow("Flow_refusal_sign", "Gateway_KyTuChoi", "EndEvent_TuChoi", "Ký văn bản từ chối", 'decision == "approve"'),
        Flow("Flow_refusal_return", "Gateway_KyTuChoi", "Task_ThamDinh", "Trả lại thẩm định", 'decision == "return"'),
    ]
    col = 4
    prev_gateway_target = "Gateway_ThamDinh"
    if review_by_head:
        n += [
            Node("Task_XemXet", "userTask", names["review"], "Lane_lanh_dao_phong", col, {"duration": durations["review"]}),
            Node("Gateway_XemXet", "exclusiveGateway", "Đồng ý?", "Lane_lanh_dao_phong", col + 1),
        ]
        f += [
            Flow("Flow_approve", "Gateway_ThamDinh", "Task_XemXet", "Trình lãnh đạo phòng", 'decision == "approve"'),
            Flow("Flow_reviewed", "Task_XemXet", "Gateway_XemXet"),
            Flow("Flow_review_return", "Gateway_XemXet", "Task_ThamDinh", "Trả lại chuyên viên", 'decision == "return"'),
        ]
        prev_gateway_target, approve_id = "Gateway_XemXet", "Flow_review_approve"
        col += 2
    else:
        approve_id = "Flow_approve"
    n += [
        Node("Task_KyDuyet", "userTask", names["sign"], "Lane_lanh_dao", col,
             {"duration": durations["sign"], "result": "file"}),
        Node("Gateway_KyDuyet", "exclusiveGateway", "Ký duyệt?", "Lane_lanh_dao", col + 1),
        Node("Task_VaoSo", "userTask", names["register"], "Lane_van_thu", col + 2,
             {"duration": durations["register"], "result": "number"}),
        Node("EndEvent_CoKetQua", "endEvent", "Có kết quả, chuyển Một cửa", "Lane_van_thu", col + 3),
    ]
    f += [
        Flow(approve_id, prev_gateway_target, "Task_KyDuyet", "Trình lãnh đạo ký", 'decision == "approve"'),
        Flow("Flow_signed", "Task_KyDuyet", "Gateway_KyDuyet"),
        Flow("Flow_sign_approve", "Gateway_KyDuyet", "Task_VaoSo", "Ký duyệt", 'decision == "approve"'),
        Flow("Flow_sign_return", "Gateway_KyDuyet", "Task_ThamDinh", "Trả lại thẩm định", 'decision == "return"'),
        Flow("Flow_done", "Task_VaoSo", "EndEvent_CoKetQua", "Vào sổ, chuyển trả kết quả"),
    ]
    return Process(pid, name, lanes, n, f, dict(SUPPLEMENT_MSG))


PROCESSES = {
    "1.001193": standard(
        "Process_1_001193", "Đăng ký khai sinh",
        {"receive": "PT30M", "appraise": "PT1H", "sign": "PT1H", "register": "PT30M", "refuse": "PT1H"},
        review_by_head=False,
        names={"receive": "Tiếp nhận, kiểm tra hồ sơ", "appraise": "Kiểm tra, ghi sổ hộ tịch",
               "sign": "Ký giấy khai sinh", "register": "Đóng dấu, trả bản chính giấy khai sinh"},
    ),
    "1.001612": standard(
        "Process_1_001612", "Đăng ký thành lập hộ kinh doanh",
        {"receive": "PT2H", "appraise": "P1D", "review": "PT4H", "sign": "PT6H", "register": "PT4H"},
        review_by_head=True,
        names={"receive": "Tiếp nhận, kiểm tra hồ sơ", "appraise": "Thẩm định hồ sơ đăng ký",
               "review": "Xem xét, trình ký", "sign": "Ký giấy chứng nhận đăng ký hộ kinh doanh",
               "register": "Vào sổ, đóng dấu, chuyển kết quả"},
    ),
    "1.009994": standard(
        "Process_1_009994", "Cấp giấy phép xây dựng nhà ở riêng lẻ",
        {"receive": "PT4H", "appraise": "P8D", "review": "P2D", "sign": "P3D", "register": "PT12H"},
        review_by_head=True,
        names={"receive": "Tiếp nhận, kiểm tra hồ sơ", "appraise": "Thẩm định hồ sơ, kiểm tra thực địa",
               "review": "Xem xét, trình ký", "sign": "Ký giấy phép xây dựng",
               "register": "Vào sổ, đóng dấu, chuyển kết quả"},
    ),
}


def lien_thong_sample() -> Process:
    """A sample inter-agency process for the demo (motcua/demo_processes): the commune's desk receives,
    the provincial Department of Construction (unit SXD) appraises — it may ask other units for their
    opinion — and its leader signs, the result comes back to the commune's desk, which hands it over."""
    lanes = [("Lane_mot_cua", "Một cửa xã", "mot_cua", "@receiving"),
             ("Lane_chuyen_vien", "Chuyên viên Sở Xây dựng", "chuyen_vien", "SXD"),
             ("Lane_lanh_dao", "Lãnh đạo Sở Xây dựng", "lanh_dao", "SXD")]
    n = [
        Node("StartEvent_TiepNhan", "startEvent", "Hồ sơ được tiếp nhận", "Lane_mot_cua", 0),
        Node("Task_TiepNhan", "userTask", "Tiếp nhận, chuyển Sở Xây dựng", "Lane_mot_cua", 1, {"duration": "PT2H"}),
        Node("Task_ThamDinh", "userTask", "Thẩm định hồ sơ (Sở Xây dựng)", "Lane_chuyen_vien", 2, {"duration": "P5D"}),
        Node("Gateway_ThamDinh", "exclusiveGateway", "Kết quả thẩm định?", "Lane_chuyen_vien", 3),
        Node("Event_ChoBoSung", "intermediateCatchEvent", "Nhận hồ sơ bổ sung", "Lane_mot_cua", 3,
             message="Message_supplement_received"),
        Node("Task_Ky", "userTask", "Ký kết quả, vào sổ", "Lane_lanh_dao", 4,
             {"duration": "P1D", "result": "file number"}),
        Node("Gateway_Ky", "exclusiveGateway", "Ký?", "Lane_lanh_dao", 5),
        Node("Task_KyTuChoi", "userTask", "Ký văn bản từ chối giải quyết (mẫu 03)", "Lane_lanh_dao", 4.2 + 2,
             {"duration": "PT4H"}),
        Node("EndEvent_TuChoi", "endEvent", "Từ chối giải quyết", "Lane_lanh_dao", 7.2),
        Node("Task_NhanKetQua", "userTask", "Nhận kết quả từ Sở, chuẩn bị trả", "Lane_mot_cua", 6, {"duration": "PT2H"}),
        Node("EndEvent_CoKetQua", "endEvent", "Có kết quả tại Một cửa xã", "Lane_mot_cua", 7),
    ]
    f = [
        Flow("Flow_start", "StartEvent_TiepNhan", "Task_TiepNhan"),
        Flow("Flow_forward", "Task_TiepNhan", "Task_ThamDinh", "Chuyển Sở Xây dựng"),
        Flow("Flow_appraised", "Task_ThamDinh", "Gateway_ThamDinh"),
        Flow("Flow_supplement", "Gateway_ThamDinh", "Event_ChoBoSung", "Yêu cầu bổ sung",
             'decision == "request_supplement"'),
        Flow("Flow_supplemented", "Event_ChoBoSung", "Task_ThamDinh"),
        Flow("Flow_refuse", "Gateway_ThamDinh", "Task_KyTuChoi", "Đề xuất từ chối", 'decision == "refuse"'),
        Flow("Flow_refusal_sign", "Task_KyTuChoi", "EndEvent_TuChoi", "Ký văn bản từ chối"),
        Flow("Flow_approve", "Gateway_ThamDinh", "Task_Ky", "Trình lãnh đạo Sở ký", 'decision == "approve"'),
        Flow("Flow_signed", "Task_Ky", "Gateway_Ky"),
        Flow("Flow_sign_approve", "Gateway_Ky", "Task_NhanKetQua", "Ký duyệt, gửi kết quả về xã", 'decision == "approve"'),
        Flow("Flow_sign_return", "Gateway_Ky", "Task_ThamDinh", "Trả lại thẩm định", 'decision == "return"'),
        Flow("Flow_done", "Task_NhanKetQua", "EndEvent_CoKetQua", "Nhận kết quả, chờ trả công dân"),
    ]
    return Process("Process_lien_thong_mau", "Quy trình mẫu liên thông xã – Sở Xây dựng", lanes, n, f,
                   dict(SUPPLEMENT_MSG))


DEMO = Path(__file__).resolve().parent.parent / "motcua" / "demo_processes"


def main() -> None:
    for code, process in PROCESSES.items():
        path = ROOT / code / "v1.bpmn"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(process), encoding="utf-8")
        print(f"wrote {path}")
    path = DEMO / "1.999901" / "v1.bpmn"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(lien_thong_sample()), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
