"""The API's OpenAPI 3.1 document, built from the bundle's schema: the contract schemathesis checks.

Each record's fields, types, bounds and nullability come from schema.json; the batch
limit from the settings; every 4xx is listed with its body. Numbers without bounds are
limited to float32's range, which the model computes in.
"""

from __future__ import annotations

import sys
from typing import Any

from mlcd.config import FLOAT32_MAX
from mlcd.serve.model import BundleModel
from mlcd.serve.payload import record_json_schema
from mlcd.serve.v2 import NUMERIC_TYPES

JSON = "application/json"
# Finite JSON numbers: the largest a float holds.
FLOAT64_MAX = sys.float_info.max
REF = "#/components/schemas/"
SWAGGER_PAGE = b"""<!doctype html>
<html><head><title>mlcd model API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
</body></html>
"""
_ERRORS = {
    400: "The body is not JSON (or CSV), is nested too deeply, or repeats a key",
    401: "The API token is missing or wrong (only when MLCD_API_TOKEN is set)",
    413: "The body is over its limit",
    415: "The Content-Type is not one this endpoint reads",
    422: (
        "Fields are missing, of the wrong type, out of range or unknown (the first 50, and a count); the "
        "batch is over its limit; or the model has no finite answer for values that are extreme together"
    ),
    503: "The server is busy with other large requests; retry after the Retry-After header's seconds",
    409: "The server keeps no prediction log (start it with --log-dir) to match labels with",
}
_WORK_ERRORS = (400, 401, 413, 415, 422, 503)


def document(model: BundleModel, max_batch: int, v2_name: str, token: bool = False) -> dict[str, Any]:
    record = record_json_schema(model.features)
    for field in record["properties"].values():
        for kind in field.get("anyOf", [field]):
            if kind.get("type") == "number":
                kind.setdefault("minimum", -FLOAT32_MAX)
                kind.setdefault("maximum", FLOAT32_MAX)
    schemas = {
        "Record": record,
        "Records": {"type": "array", "items": {"$ref": REF + "Record"}, "minItems": 1, "maxItems": max_batch},
        "Answer": _answer_schema(model),
        "Problem": {
            "type": "object",
            "properties": {
                "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                "msg": {"type": "string"},
            },
            "required": ["loc", "msg"],
        },
        "Error": {
            "type": "object",
            "properties": {
                "detail": {
                    "anyOf": [{"type": "string"}, {"type": "array", "items": {"$ref": REF + "Problem"}}]
                }
            },
            "required": ["detail"],
        },
        "V2Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
        "MlflowRequest": _mlflow_request_schema(),
        "Feedback": _feedback_schema(model),
        "V2InferRequest": _v2_request_schema(model),
    }
    security: list[dict[str, list[str]]] = [{"bearer": []}] if token else []
    paths: dict[str, Any] = {
        "/predict": {
            "post": _operation(
                "Predict for one record or a list of records",
                {JSON: {"schema": {"oneOf": [{"$ref": REF + "Record"}, {"$ref": REF + "Records"}]}}},
                {"$ref": REF + "Answer"},
                _WORK_ERRORS,
                security,
            )
        },
        "/invocations": {
            "post": _operation(
                "MLflow's scoring protocol: dataframe_split, dataframe_records, instances, inputs or CSV",
                {
                    JSON: {"schema": {"$ref": REF + "MlflowRequest"}},
                    "text/csv": {"schema": {"type": "string"}},
                },
                {"type": "object", "required": ["predictions", "model", "request_id"]},
                _WORK_ERRORS,
                security,
            )
        },
        "/feedback": {
            "post": _operation(
                "True labels (or values) for answered records, by request id: live performance",
                {
                    JSON: {
                        "schema": {
                            "oneOf": [
                                {"$ref": REF + "Feedback"},
                                {
                                    "type": "array",
                                    "items": {"$ref": REF + "Feedback"},
                                    "minItems": 1,
                                    "maxItems": max_batch,
                                },
                            ]
                        }
                    }
                },
                {
                    "type": "object",
                    "properties": {
                        "received": {"type": "integer"},
                        "matched": {"type": "integer"},
                        "unknown": {"type": "integer"},
                        "live": {"type": "object", "additionalProperties": {"type": "number"}},
                    },
                    "required": ["received", "matched", "unknown", "live"],
                },
                (*_WORK_ERRORS, 409),
                security,
            )
        },
        "/health": {"get": _probe("The process is alive", {"status": {"const": "ok"}})},
        "/ready": {
            "get": _probe("The model is loaded and answered its own examples", {"status": {"const": "ready"}})
        },
        "/version": {
            "get": _operation(
                "The bundle manifest: hashes, commit, params, metrics",
                None,
                {"type": "object", "required": ["model_hash", "git_commit"]},
                (401,),
                security,
            )
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus' text format",
                        "content": {
                            "text/plain; version=0.0.4; charset=utf-8": {"schema": {"type": "string"}}
                        },
                    }
                },
            }
        },
        "/openapi.json": {"get": _probe("This document", {})},
        "/v2": {"get": _v2_operation("Server metadata", None, (401,), security)},
        "/v2/health/live": {"get": _v2_operation("The server is live", None, ())},
        "/v2/health/ready": {"get": _v2_operation("The server is ready", None, ())},
    }
    for prefix, parameters in (
        ("/v2/models/{name}", [_name_parameter(v2_name)]),
        ("/v2/models/{name}/versions/{version}", [_name_parameter(v2_name), _version_parameter(model)]),
    ):
        paths[prefix] = {"get": _v2_operation("Model metadata", None, (401,), security, parameters)}
        paths[prefix + "/ready"] = {
            "get": _v2_operation("Model readiness", None, (401,), security, parameters)
        }
        paths[prefix + "/infer"] = {
            "post": _v2_operation(
                "Inference: one input tensor per feature (JSON or the binary tensor extension)",
                {JSON: {"schema": {"$ref": REF + "V2InferRequest"}}},
                _WORK_ERRORS,
                security,
                parameters,
            )
        }
    components: dict[str, Any] = {"schemas": schemas}
    if token:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mlcd model API",
            "version": model.model_hash[:12],
            "description": (
                "Predictions from the packaged model bundle. A feature the schema marks nullable may be "
                "null or left out; the model imputes it as in training."
            ),
        },
        "paths": paths,
        "components": components,
    }


def _operation(
    summary: str,
    body: dict[str, Any] | None,
    answer: dict[str, Any],
    errors: tuple[int, ...],
    security: list[dict[str, list[str]]],
) -> dict[str, Any]:
    """An operation; one with a body is a body of work, whose every answer names its request id."""
    responses: dict[str, Any] = {"200": {"description": "The answer", "content": {JSON: {"schema": answer}}}}
    for status in errors:
        if status == 401 and not security:
            continue
        responses[str(status)] = {
            "description": _ERRORS[status],
            "content": {JSON: {"schema": {"$ref": REF + "Error"}}},
        }
    operation: dict[str, Any] = {"summary": summary, "responses": responses, "security": security}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": body}
        operation["parameters"] = [
            {
                "name": "X-Request-Id",
                "in": "header",
                "required": False,
                "description": "kept when 1 to 128 of A-Z a-z 0-9 . _ : -, else replaced",
                "schema": {"type": "string"},
            }
        ]
        for response in responses.values():
            response["headers"] = {"X-Request-Id": {"required": True, "schema": REQUEST_ID}}
    return operation


def _v2_operation(
    summary: str,
    body: dict[str, Any] | None,
    errors: tuple[int, ...],
    security: list[dict[str, list[str]]] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    operation = _operation(summary, body, {"type": "object"}, errors, security or [])
    for status, response in operation["responses"].items():
        if status != "200":
            response["content"][JSON]["schema"] = {"$ref": REF + "V2Error"}
    if parameters:
        operation["parameters"] = [*operation.get("parameters", ()), *parameters]
        operation["responses"]["404"] = {
            "description": "No such model or version on this server",
            "content": {JSON: {"schema": {"$ref": REF + "V2Error"}}},
        }
    return operation


def _probe(summary: str, properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties}
    return {
        "summary": summary,
        "responses": {"200": {"description": "OK", "content": {JSON: {"schema": schema}}}},
    }


def _name_parameter(name: str) -> dict[str, Any]:
    return {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "enum": [name]}}


def _version_parameter(model: BundleModel) -> dict[str, Any]:
    versions = [model.model_hash[:12], model.model_hash]
    return {"name": "version", "in": "path", "required": True, "schema": {"type": "string", "enum": versions}}


def _feedback_schema(model: BundleModel) -> dict[str, Any]:
    truth = (
        {"label": {"type": "string", "enum": model.classes}}
        if model.is_classifier
        else {"value": {"type": "number", "minimum": -FLOAT64_MAX, "maximum": FLOAT64_MAX}}
    )
    return {
        "type": "object",
        "properties": {
            "request_id": REQUEST_ID,
            "row": {"type": "integer", "minimum": 0, "description": "the record's place in its request"},
            **truth,
        },
        "required": ["request_id", *truth],
        "additionalProperties": False,
    }


def _answer_schema(model: BundleModel) -> dict[str, Any]:
    ref = {
        "type": "object",
        "properties": {"hash": {"type": "string"}, "git_commit": {"type": ["string", "null"]}},
        "required": ["hash", "git_commit"],
    }
    if not model.is_classifier:
        return {
            "type": "object",
            "properties": {
                "predictions": {"type": "array", "items": {"type": "number"}},
                "model": ref,
                "request_id": REQUEST_ID,
            },
            "required": ["predictions", "model", "request_id"],
        }
    classes = model.classes
    row = {
        "type": "object",
        "properties": {name: {"type": "number", "minimum": 0, "maximum": 1} for name in classes},
        "required": classes,
    }
    return {
        "type": "object",
        "properties": {
            "labels": {"type": "array", "items": {"type": "string", "enum": classes}},
            "probabilities": {"type": "array", "items": row},
            "model": ref,
            "request_id": REQUEST_ID,
        },
        "required": ["labels", "probabilities", "model", "request_id"],
    }


# The X-Request-Id header of an answer, also in its body: /feedback and the prediction log use it.
REQUEST_ID = {"type": "string", "minLength": 1, "maxLength": 128}

SCALAR = {"type": ["number", "string", "boolean", "null"]}
# A record of feature values, a row of them, and a column of them: every shape the two
# protocols carry is built of these (and so is bounded: no open-ended nesting).
_RECORD_OF_SCALARS = {"type": "object", "additionalProperties": SCALAR}
_LIST_OF_SCALARS = {"type": "array", "items": SCALAR}


def _mlflow_request_schema() -> dict[str, Any]:
    rows_or_records = {"type": "array", "items": {"anyOf": [_RECORD_OF_SCALARS, _LIST_OF_SCALARS]}}
    columns_or_record = {"type": "object", "additionalProperties": {"anyOf": [_LIST_OF_SCALARS, SCALAR]}}
    formats = {
        "dataframe_split": {
            "type": "object",
            "properties": {
                "columns": {"type": "array", "items": {"type": "string"}},
                "data": {"type": "array", "items": _LIST_OF_SCALARS},
                "index": _LIST_OF_SCALARS,
            },
            "required": ["data"],
            "additionalProperties": False,
        },
        "dataframe_records": {"type": "array", "items": _RECORD_OF_SCALARS},
        "instances": {"anyOf": [rows_or_records, columns_or_record]},
        "inputs": {"anyOf": [rows_or_records, columns_or_record]},
    }
    return {
        "oneOf": [
            {"type": "object", "properties": {key: schema}, "required": [key], "additionalProperties": False}
            for key, schema in formats.items()
        ]
    }


def _v2_request_schema(model: BundleModel) -> dict[str, Any]:
    tensor = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": [f.name for f in model.features]},
            "datatype": {"type": "string", "enum": ["BYTES", *NUMERIC_TYPES]},
            "shape": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0},
                "minItems": 1,
                "maxItems": 2,
            },
            "data": {"type": "array", "items": {"anyOf": [SCALAR, {"type": "array", "items": SCALAR}]}},
            "parameters": _RECORD_OF_SCALARS,
        },
        "required": ["name", "datatype", "shape"],
    }
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "parameters": _RECORD_OF_SCALARS,
            "inputs": {"type": "array", "items": tensor, "minItems": 1},
            "outputs": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            },
        },
        "required": ["inputs"],
    }
