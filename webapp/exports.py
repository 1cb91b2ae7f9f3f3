"""Tables as downloads: CSV (UTF-8 with BOM, so Excel shows Vietnamese) or XLSX."""
from __future__ import annotations

import csv
import io

from flask import Response

from engine import clock

from . import i18n


def table_response(fmt: str, name: str, title: str, header: list, data: list[list]) -> Response:
    """A table as CSV (UTF-8 with BOM, so Excel shows Vietnamese) or XLSX (title row, then header)."""
    if fmt == "csv":
        out = io.StringIO()
        out.write("\ufeff")
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(data)
        return Response(out.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": f"attachment; filename={name}.csv"})
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Báo cáo"
    ws.append([f"{title} · cập nhật {i18n.dt(clock.now())}"])
    ws.append(header)
    for row in data:
        ws.append(row)
    buffer = io.BytesIO()
    wb.save(buffer)
    return Response(buffer.getvalue(), mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f"attachment; filename={name}.xlsx"})

