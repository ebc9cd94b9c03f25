"""The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json."""

from __future__ import annotations

from crm_core.lifecycle import STAGES
from crm_core.targets import MAX_AMOUNT
from crm_core.ticket_models import CLOSED, OPEN, RESOLVED
from crm_core.ticket_policy import PRIORITIES

# Ids are 64-bit in the database; the API takes up to 18 digits, which always fit.
MAX_ID = 10**18 - 1


def _list_of(ref: str) -> dict:
    return {
        "type": "object",
        "required": ["items", "total", "next"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{ref}"}},
            "total": {"type": "integer"},
            "next": {"type": ["string", "null"], "description": "pass back as `cursor` for the next page"},
        },
    }


_PAGE_PARAMS = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}},
    {"name": "cursor", "in": "query", "description": "the previous page's `next`; empty or absent: the first page",
     "allowEmptyValue": True, "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}},
]
_ID = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
_ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_ERRORS = {
    "400": {"description": "bad parameter", "content": _ERROR_BODY},
    "401": {"description": "missing, wrong or revoked bearer token", "content": _ERROR_BODY,
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
}
_CUSTOMER_ID = {"name": "customer_id", "in": "path", "required": True, "schema": _ID}
# Filters given with an empty value (`?since=`) are not applied, as if absent: allowEmptyValue says so.
_SINCE = {"name": "since", "in": "query", "description": "created at or after this time (with its UTC offset)",
          "allowEmptyValue": True, "schema": {"type": "string", "format": "date-time"}}


def _op(summary: str, schema_ref: str, params: list | None = None, extra: dict | None = None) -> dict:
    return {
        "get": {
            "summary": summary,
            "parameters": params or [],
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}},
                **_ERRORS,
                **(extra or {}),
            },
        }
    }


_MONTH = {"type": "string", "pattern": "^20[0-9]{2}-(0[1-9]|1[0-2])$", "examples": ["2026-12"],
          "description": "a calendar month in the business time zone (SCRM_TIMEZONE)"}
_TARGET_ROW = {
    "type": "object", "required": ["kind", "id", "name", "target", "won_amount", "won_deals", "attainment"],
    "properties": {
        "kind": {"enum": ["staff", "department"]},
        "id": {"type": "integer", "description": "the staff member's id, or the WeCom department id"},
        "name": {"type": "string"}, "userid": {"type": ["string", "null"], "description": "staff only"},
        "target": {"type": ["integer", "null"], "description": "yuan; null: no target set for the month"},
        "won_amount": {"type": "integer", "description": "budgets of the deals won in the month (yuan), for the rep "
                                                         "who owns each deal; a department's members summed"},
        "won_deals": {"type": "integer"},
        "attainment": {"type": ["number", "null"], "description": "won_amount / target (1.0 = reached)"},
    },
}

_NOT_FOUND = {"404": {"description": "no such customer, or (for a staff token) one outside that staff member's data "
                                     "scope: both answer alike, and the attempt is audit-logged", "content": _ERROR_BODY}}

OPENAPI: dict = {
    "openapi": "3.1.0",
    "info": {"title": "SCRM for WeCom", "version": "1.0.0", "description": "Customers, messages and staff archived from WeCom."},
    "components": {
        "securitySchemes": {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "SCRM_API_TOKEN (every customer), or a staff token from `scrm api-token issue USERID`, "
                           "which sees what that staff member sees in chat: sales and support their own customers, "
                           "managers their departments', admins all"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "Customer": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"}, "name": {"type": "string"}, "company": {"type": "string"},
                    "phone": {"type": "string"}, "gender": {"type": "integer"}, "remark": {"type": "string"},
                    "description": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
                    "lifecycle": {"enum": list(STAGES), "description":
                                  "prospect 潜在 → interested 意向 → customer 成交 → loyal 忠诚; dormant 沉睡 "
                                  "(no interaction for 90 days, returns to its stage on contact); churned 已流失 "
                                  "(the customer deleted the rep)"},
                    "lifecycle_changed_at": {"type": ["string", "null"], "format": "date-time"},
                    "lead_score": {"type": "integer", "minimum": 0, "maximum": 100,
                                   "description": "热度: recency, frequency and intents of the customer's messages "
                                                  "in the last 30 days, plus the deal stage"},
                    "lead_score_at": {"type": ["string", "null"], "format": "date-time"},
                    "owner": {"type": ["string", "null"]},
                    "churned_at": {"type": ["string", "null"], "format": "date-time"},
                    "last_contact_at": {"type": ["string", "null"], "format": "date-time"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "identities": {"type": "array", "items": {"type": "object", "properties": {
                        "channel": {"type": "string"}, "external_id": {"type": "string"}}}},
                },
            },
            "Message": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"}, "channel": {"type": "string"}, "direction": {"enum": ["in", "out"]},
                    "msg_type": {"type": "string"}, "text": {"type": "string"}, "sender": {"type": "string"},
                    "recipient": {"type": "string"}, "customer_id": {"type": ["integer", "null"]},
                    "staff_id": {"type": ["integer", "null"]}, "external_msg_id": {"type": ["string", "null"]},
                    "sent_at": {"type": "string", "format": "date-time"}, "analysis": {"type": ["object", "null"]},
                },
            },
            "Staff": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"}, "userid": {"type": "string"}, "name": {"type": "string"},
                    "role": {"type": "string"}, "department_ids": {"type": "array", "items": {"type": "integer"}},
                    "position": {"type": "string"}, "active": {"type": "boolean"},
                },
            },
            "Ticket": {
                "type": "object",
                "description": "A support ticket; GET /api/v1/tickets/{number} adds its `events` (who did what, when).",
                "properties": {
                    "id": {"type": "integer"}, "number": {"type": "string", "examples": ["T20261122-0042"]},
                    "status": {"type": "string"}, "category": {"type": "string"}, "priority": {"type": "string"},
                    "group": {"type": "string"}, "customer_id": {"type": "integer"}, "customer": {"type": "string"},
                    "assignee": {"type": ["string", "null"]}, "summary": {"type": "string"},
                    "ack_status": {"type": "string"}, "csat": {"type": ["integer", "null"]},
                    "created_at": {"type": "string", "format": "date-time"},
                    "first_response_due_at": {"type": ["string", "null"], "format": "date-time"},
                    "resolution_due_at": {"type": ["string", "null"], "format": "date-time"},
                    "resolved_at": {"type": ["string", "null"], "format": "date-time"},
                },
            },
            "TicketEvent": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"}, "kind": {"type": "string", "examples": ["created", "assigned", "resolved"]},
                    "actor": {"type": ["string", "null"], "description": "the staff member's userid"},
                    "message_id": {"type": ["integer", "null"]}, "detail": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"},
                },
            },
            "TicketDetail": {"allOf": [{"$ref": "#/components/schemas/Ticket"}, {
                "type": "object", "required": ["events"],
                "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/TicketEvent"}}},
            }]},
            "TicketList": _list_of("Ticket"),
            "CustomerList": _list_of("Customer"),
            "MessageList": _list_of("Message"),
            "StaffList": _list_of("Staff"),
            "TargetRow": _TARGET_ROW,
            "Targets": {"type": "object", "required": ["month", "departments", "reps"], "properties": {
                "month": {"type": "string"},
                "departments": {"type": "array", "items": {"$ref": "#/components/schemas/TargetRow"}},
                "reps": {"type": "array", "items": {"$ref": "#/components/schemas/TargetRow"}}}},
            "TargetSet": {
                "type": "object", "required": ["month", "amount"],
                "description": "one of `staff` or `department` names whose target it is",
                "properties": {
                    "month": _MONTH,
                    "amount": {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT, "description": "yuan"},
                    "staff": {"type": "string", "pattern": "^[0-9A-Za-z][0-9A-Za-z_.@-]{0,63}$",
                              "description": "the rep's WeCom userid"},
                    "department": {**_ID, "minimum": 1, "description": "the WeCom department id"},
                },
                "oneOf": [{"required": ["staff"]}, {"required": ["department"]}],
            },
            "TargetChange": {"type": "object", "required": ["month", "kind", "id", "name", "amount", "previous"],
                             "properties": {
                                 "month": {"type": "string"}, "kind": {"enum": ["staff", "department"]},
                                 "id": {"type": "integer"}, "name": {"type": "string"},
                                 "userid": {"type": ["string", "null"]}, "amount": {"type": "integer"},
                                 "previous": {"type": ["integer", "null"], "description": "the target it replaced"}}},
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/customers": _op(
            "Search customers by name, company, phone or remark", "CustomerList",
            [{"name": "q", "in": "query", "schema": {"type": "string"}}, *_PAGE_PARAMS],
        ),
        "/api/v1/customers/{customer_id}": _op("One customer", "Customer", [_CUSTOMER_ID], _NOT_FOUND),
        "/api/v1/customers/{customer_id}/messages": _op(
            "A customer's messages, oldest first", "MessageList", [_CUSTOMER_ID, *_PAGE_PARAMS], _NOT_FOUND
        ),
        "/api/v1/messages": _op(
            "Archived messages, oldest first", "MessageList",
            [
                {"name": "channel", "in": "query", "schema": {"type": "string"}},
                {"name": "direction", "in": "query", "allowEmptyValue": True, "schema": {"enum": ["in", "out"]}},
                {**_SINCE, "description": "sent at or after this time (with its UTC offset)"},
                *_PAGE_PARAMS,
            ],
        ),
        "/api/v1/staff": _op("Staff members", "StaffList", _PAGE_PARAMS),
        "/api/v1/tickets": _op(
            "Support tickets, oldest first", "TicketList",
            [
                {"name": "status", "in": "query", "allowEmptyValue": True, "schema": {"enum": [OPEN, RESOLVED, CLOSED]}},
                {"name": "priority", "in": "query", "allowEmptyValue": True, "schema": {"enum": list(PRIORITIES)}},
                *({"name": name, "in": "query", "schema": {"type": "string"}} for name in ("category", "group")),
                {"name": "assignee", "in": "query", "description": "the assignee's WeCom userid", "schema": {"type": "string"}},
                {"name": "customer_id", "in": "query", "allowEmptyValue": True, "schema": _ID},
                _SINCE,
                *_PAGE_PARAMS,
            ],
        ),
        "/api/v1/targets": {
            **_op("Monthly sales targets and attainment: each rep and department the caller sees (a staff token: "
                  "managers their team and departments, others themselves)", "Targets",
                  [{"name": "month", "in": "query", "allowEmptyValue": True, "schema": _MONTH,
                    "description": "default: this month"},
                   {"name": "department", "in": "query", "allowEmptyValue": True, "schema": {**_ID, "minimum": 1},
                    "description": "only this department and its members"}],
                  {"404": {"description": "no such department, or one this staff token may not see", "content": _ERROR_BODY}}),
            "put": {
                "summary": "Set (or replace) a rep's or a department's target for a month",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/TargetSet"},
                    "examples": {
                        "rep": {"summary": "张伟's December target: 50万",
                                "value": {"month": "2026-12", "staff": "zhangwei", "amount": 500000}},
                        "department": {"summary": "department 2's December target: 200万",
                                       "value": {"month": "2026-12", "department": 2, "amount": 2000000}}}}}},
                "responses": {
                    "200": {"description": "set", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/TargetChange"}}}},
                    **_ERRORS,
                    "403": {"description": "a staff token whose person may not set this target (not a manager of "
                                           "the department or colleague, nor an admin); audit-logged",
                            "content": _ERROR_BODY},
                    "404": {"description": "no active staff member with that userid, or no such department",
                            "content": _ERROR_BODY},
                },
            },
        },
        "/api/v1/tickets/{number}": _op(
            "One ticket with its history", "TicketDetail",
            [{"name": "number", "in": "path", "required": True, "schema": {"type": "string"}}],
            {"404": {"description": "no such ticket, or one this staff token may not see (answered alike)",
                     "content": _ERROR_BODY}},
        ),
    },
}
