"""The API's docs page, drawn on the server from the OpenAPI document: no script, nothing from elsewhere
(the web app's Content-Security-Policy allows neither, and a machine without internet has no CDN)."""

from __future__ import annotations

from html import escape

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

METHODS = ("get", "post", "put", "patch", "delete")


def _schema_name(schema: dict) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"list of {_schema_name(schema.get('items', {}))}"
    if "anyOf" in schema:
        return " or ".join(_schema_name(part) for part in schema["anyOf"])
    return schema.get("type", "object")


def render(api: FastAPI) -> HTMLResponse:
    document = api.openapi()
    parts = [f"<h1>{escape(document['info']['title'])}</h1>",
             f"<p>{escape(document['info'].get('description', ''))}</p>",
             '<p>The machine-readable document: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>. Paths '
             "below are under <code>/api/v1</code>.</p>"]
    for path, operations in document["paths"].items():
        for method in METHODS:
            operation = operations.get(method)
            if operation is None:
                continue
            parts.append(f"<h2><code>{method.upper()} {escape(path)}</code></h2>")
            if operation.get("description") or operation.get("summary"):
                parts.append(f"<p>{escape(operation.get('description') or operation['summary'])}</p>")
            parameters = operation.get("parameters", [])
            if parameters:
                parts.append("<ul>" + "".join(
                    f"<li><code>{escape(p['name'])}</code> ({escape(p['in'])}"
                    f"{', required' if p.get('required') else ''}): {escape(_schema_name(p.get('schema', {})))}"
                    f"{' — ' + escape(p['description']) if p.get('description') else ''}</li>"
                    for p in parameters) + "</ul>")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                parts.append(f"<p>Body: <code>{escape(_schema_name(body['schema']))}</code></p>")
            answers = ", ".join(f"{escape(code)} {escape(answer.get('description', ''))}"
                                for code, answer in operation.get("responses", {}).items())
            parts.append(f"<p>Answers: {answers}</p>")
    parts.append("<h2>Bodies</h2>")
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        fields = ", ".join(f"<code>{escape(field)}</code>: {escape(_schema_name(spec))}"
                           for field, spec in schema.get("properties", {}).items())
        parts.append(f"<h3>{escape(name)}</h3><p>{fields}</p>")
    page = ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Blast API</title>'
            '<link rel="stylesheet" href="/static/blast.css"></head><body><main>'
            + "".join(parts) + "</main></body></html>")
    return HTMLResponse(page)
