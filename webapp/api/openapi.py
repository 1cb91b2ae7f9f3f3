"""The OpenAPI 3 document of the v1 API, generated from the same marshmallow schemas the routes use."""
from __future__ import annotations

from functools import lru_cache

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from . import schemas as s

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}

# (method, path, summary, auth, request schema, success status, response schema, many, error statuses)
OPERATIONS = [
    ("post", "/auth/token", "Get a bearer token", False, s.TokenRequest, 200, s.TokenResponse, False, [401, 422, 429]),
    ("get", "/procedures", "Published procedures in force today", False, None, 200, s.ProcedureOut, True, []),
    ("get", "/procedures/{code}", "One procedure with its components and versions", False, None, 200,
     s.ProcedureOut, False, [404]),
    ("post", "/procedures", "Create a procedure (admin)", True, s.ProcedureIn, 201, s.ProcedureOut, False,
     [401, 403, 409, 422]),
    ("post", "/procedures/{code}/versions", "Submit a BPMN version (designer)", True, s.VersionIn, 201,
     s.VersionCreated, False, [401, 403, 404, 422]),
    ("post", "/procedures/{code}/versions/{number}/publish", "Publish a version (admin)", True, s.PublishIn, 200,
     s.VersionOut, False, [401, 403, 404, 409, 422]),
    ("post", "/bpmn/validate", "Validate a BPMN file", True, s.ValidateIn, 200, s.ValidateOut, False, [401, 422]),
    ("post", "/dossiers", "Receive a dossier (one-stop officer); honours Idempotency-Key", True, s.DossierIn, 201,
     s.DossierCreated, False, [401, 403, 404, 409, 413, 422]),
    ("get", "/dossiers/{code}", "A dossier with its tasks, supplements, apologies and timeline", True, None, 200,
     s.DossierOut, False, [401, 404]),
    ("get", "/dossiers/{code}/audit", "The dossier's audit log, every event in order, and whether its hash chain "
     "is intact (`first_bad_seq` and `reason` name the first event that is wrong); for whoever may see the dossier",
     True, None, 200, s.AuditOut, False, [401, 404]),
    ("get", "/tasks", "The caller's open tasks", True, None, 200, s.TaskOut, True, [401]),
    ("post", "/tasks/{task_id}/complete", "Complete a step with a decision; a step whose diagram sets `result` "
     "records the result document when it approves (`result`: the signed PDF as base64, its number and signing "
     "date), else 422 result_required naming each missing field (result.file, result.number, result.signed_on)",
     True, s.CompleteIn, 200, s.CompleteOut, False, [401, 403, 404, 409, 413, 422]),
    ("post", "/tasks/{task_id}/assign", "Assign (or reassign) an open step to a holder of its role in its unit "
     "(phân công, a head of that unit); audited; then only the assignee may complete it", True, s.AssignIn, 200,
     s.TaskOut, False, [401, 403, 404, 409, 422]),
    ("post", "/tasks/{task_id}/claim", "Claim an open step of the caller's role (nhận việc); 409 when it is "
     "assigned to someone else", True, None, 200, s.TaskOut, False, [401, 403, 404, 409]),
    ("post", "/tasks/{task_id}/release", "Hand an assigned step back to its unit (the assignee, or a head of the "
     "unit)", True, None, 200, s.TaskOut, False, [401, 403, 404, 409]),
    ("post", "/dossiers/{code}/supplements", "Record the citizen's supplement; honours Idempotency-Key", True,
     s.SupplementIn, 200, s.DossierOut, False, [401, 403, 404, 409, 413, 422]),
    ("post", "/dossiers/{code}/apologies", "Apology with a new appointment (form 04)", True, s.ApologyIn, 201,
     s.ApologyOut, False, [401, 403, 404, 409, 422]),
    ("post", "/dossiers/{code}/withdraw", "Withdrawal (form 05)", True, s.WithdrawIn, 200, s.StatusOut, False,
     [401, 403, 404, 409, 422]),
    ("post", "/dossiers/{code}/return-result", "Hand over the result", True, s.ReturnIn, 200, s.StatusOut, False,
     [401, 403, 404, 409, 422]),
    ("post", "/counter-notices", "At the counter, a dossier not received: guidance to complete it, once (form 02), or a "
     "refusal with reasons (form 03); recorded and numbered, no dossier created; 409 counter_guidance_repeated when "
     "the applicant was already guided for this procedure at this unit", True, s.CounterNoticeIn, 201,
     s.CounterNoticeOut, False, [401, 403, 404, 409, 422]),
    ("get", "/counter-notices/{notice_id}", "A counter notice (the issuing unit's staff)", True, None, 200,
     s.CounterNoticeOut, False, [401, 404]),
    ("get", "/public/dossiers/{code}", "Citizen look-up by code and ID number (no login, rate-limited)", False,
     None, 200, s.PublicDossier, False, [404, 422, 429]),
    ("get", "/metrics", "QĐ 766 progress figures (manager, admin)", True, None, 200, s.MetricsOut, False,
     [401, 403, 422]),
]

PARAMS = {
    "/public/dossiers/{code}": [{"name": "id_number", "in": "query", "required": True, "schema": {"type": "string"}}],
    "/metrics": [{"name": n, "in": "query", "required": False, "schema": {"type": "string", **f}}
                 for n, f in (("from", {"format": "date"}), ("to", {"format": "date"}), ("unit", {}), ("procedure", {}),
                              ("field", {}))],
    "/dossiers": [{"name": "Idempotency-Key", "in": "header", "required": False,
                   "schema": {"type": "string", "minLength": 1, "maxLength": 255}}],
    "/dossiers/{code}/supplements": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                      "schema": {"type": "string", "minLength": 1, "maxLength": 255}}],
}


@lru_cache(maxsize=1)
def spec() -> dict:
    api = APISpec(title="motcua API", version="1.0.0", openapi_version="3.0.3", plugins=[MarshmallowPlugin()],
                  servers=[{"url": "/api/v1"}],
                  info={"description": "BPMN workflow engine for one-stop-shop administrative procedures."})
    api.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    api.components.schema("ProblemDetails", {
        "type": "object", "required": ["type", "title", "status", "detail"],
        "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                       "detail": {"type": "string"}, "request_id": {"type": "string", "nullable": True},
                       "errors": {}},
    })
    paths: dict[str, dict] = {}
    for method, path, summary, auth, req, status, resp, many, errors in OPERATIONS:
        op: dict = {"summary": summary, "responses": {}}
        params = [{"name": name[1:-1], "in": "path", "required": True,
                   "schema": {"type": "integer" if name in ("{number}", "{notice_id}") else "string"}}
                  for name in path.split("/") if name.startswith("{")]
        params += PARAMS.get(path, [])
        if params:
            op["parameters"] = params
        if req is not None:
            op["requestBody"] = {"required": path not in ("/dossiers/{code}/withdraw", "/dossiers/{code}/return-result"),
                                 "content": {"application/json": {"schema": req}}}
        schema = {"type": "array", "items": resp} if many else resp
        op["responses"][str(status)] = {"description": "success", "content": {"application/json": {"schema": schema}}}
        # any request may be refused as hostile input (NUL or a lone surrogate in the path or query: 400)
        generic = [400] + ([413, 415] if req is not None else [])
        generic += [401] if auth else []
        for code in sorted(set(errors + generic + [500])):
            op["responses"][str(code)] = {"description": "problem", "content": PROBLEM}
        if auth:
            op["security"] = [{"bearer": []}]
        paths.setdefault(path, {})[method] = op
    for path, ops in paths.items():
        api.path(path=path, operations=ops)
    return api.to_dict()
