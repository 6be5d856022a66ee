"""Does a new OpenAPI document of a service break its clients? Pure: no I/O.

``api_breaks(old, new)`` lists what a client built on ``old`` (the committed
``docs/openapi/<service>.json``) would find broken in ``new``:

- an operation removed (a path, or a method of it);
- a request that was valid refused: a required parameter or request body added, a parameter
  or a body field now required, a parameter's or a body's values narrowed (checked by
  ``compat.breaking_changes``: every old request must pass the new schema);
- an answer the client can no longer read: a documented 2xx status removed, its media type
  gone, its schema refusing what the old one promised (a property removed, retyped, no
  longer always there, made nullable: ``compat.old_reader_refusals``), an enum value removed
  from an answer.

Additions are fine (an operation, an optional parameter or field, a property of an answer, a
status), and so is an untyped answer (``{}``, an object of any properties) becoming typed, or
an untyped "JSON" answer documented as the file it always was (``.xlsx``, ``.csv``).
A list answer becoming the ``Page`` envelope IS a break (an array becomes an object).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from iomflow.cli.compat import Change, breaking_changes, old_reader_refusals

REQUEST_BREAKS = frozenset({"retyped", "nullable", "required", "enum", "removed"})
"""Kinds of ``compat.breaking_changes`` that refuse an old client's request (a tightened
bound or format is not among them: a client keeps to the values it was shown)."""
ANSWER_BREAKS = frozenset({"retyped", "nullable", "required", "removed", "unproven"})
"""Kinds of ``compat.old_reader_refusals`` that an old client cannot read (not an added
property, not an enum value added, not a looser bound)."""

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
COMPONENTS = "#/components/schemas/"


@dataclass(frozen=True)
class ApiBreak:
    """One break: the operation (``GET /v1/routes``) and what, in plain words."""

    operation: str
    message: str

    def __str__(self) -> str:
        return f"{self.operation}: {self.message}"


def describe(breaks: list[ApiBreak]) -> str:
    return "\n".join(f"  - {b}" for b in breaks)


def api_breaks(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[ApiBreak]:
    """Every break of ``new`` for a client of ``old`` (both whole OpenAPI 3 documents)."""
    found: list[ApiBreak] = []
    old_ops, new_ops = dict(_operations(old)), dict(_operations(new))
    for key, old_op in old_ops.items():
        name = f"{key[0].upper()} {key[1]}"
        new_op = new_ops.get(key)
        if new_op is None:
            found.append(ApiBreak(name, "operation removed"))
            continue
        found += [ApiBreak(name, m) for m in _request(old, new, old_op, new_op)]
        found += [ApiBreak(name, m) for m in _responses(old, new, old_op, new_op)]
    return found


def _operations(doc: Mapping[str, Any]) -> Iterator[tuple[tuple[str, str], dict[str, Any]]]:
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                operation = dict(item[method])
                # parameters of the path item apply to each of its operations
                operation["parameters"] = [
                    *item.get("parameters", []),
                    *operation.get("parameters", []),
                ]
                yield (method, path), operation


def _resolve(doc: Mapping[str, Any], node: Any) -> Any:
    seen = 0
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str) and seen < 50:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            return node
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~"), {})
        node, seen = target, seen + 1
    return node


def _closed(node: Any) -> Any:
    """An answer's schema as the server produces it: an object with its ``properties`` and
    no word on others holds no others (a response model answers its own fields only)."""
    if isinstance(node, list):
        return [_closed(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _closed(v) for k, v in node.items()}
    if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
        out["additionalProperties"] = False
    return out


def _schema(doc: Mapping[str, Any], schema: Any, closed: bool = False) -> dict[str, Any]:
    """A JSON Schema document of an OpenAPI schema: its component references as ``$defs``;
    ``closed``: its objects hold their ``properties`` only (``_closed``): what a server
    answers by a response model, what a client sends by the document."""
    text = json.dumps(schema if schema is not None else {})
    text = text.replace(f'"{COMPONENTS}', '"#/$defs/')
    components = json.loads(
        json.dumps(doc.get("components", {}).get("schemas", {})).replace(
            f'"{COMPONENTS}', '"#/$defs/'
        )
    )
    out: dict[str, Any] = json.loads(text)
    if not isinstance(out, dict):
        return {}
    if closed:
        out, components = _closed(out), _closed(components)
    return {**out, "$defs": components} if components else out


def _words(changes: list[Change], where: str, kinds: frozenset[str]) -> list[str]:
    return [
        f"{where}{'.' + c.path if c.path else ''}: {c.message}" for c in changes if c.kind in kinds
    ]


def _params(doc: Mapping[str, Any], op: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
    out = {}
    for raw in op.get("parameters", []):
        param = _resolve(doc, raw)
        out[(param.get("in", "query"), param.get("name", ""))] = param
    return out


def _request(
    old: Mapping[str, Any], new: Mapping[str, Any], old_op: dict[str, Any], new_op: dict[str, Any]
) -> list[str]:
    found: list[str] = []
    old_params, new_params = _params(old, old_op), _params(new, new_op)
    for (place, name), param in new_params.items():
        before = old_params.get((place, name))
        where = f"{place} parameter {name}"
        if param.get("required") and (before is None or not before.get("required")):
            found.append(f"{where}: now required" if before else f"{where}: required, added")
        if before is not None:
            changes = breaking_changes(
                _schema(old, before.get("schema")), _schema(new, param.get("schema"))
            )
            found += _words(changes, where, REQUEST_BREAKS)
    old_body = _resolve(old, old_op.get("requestBody")) or {}
    new_body = _resolve(new, new_op.get("requestBody")) or {}
    if new_body.get("required") and not old_body.get("required"):
        found.append("request body: now required")
    for media, content in old_body.get("content", {}).items():
        if "json" not in media:
            continue
        if media not in new_body.get("content", {}):
            if new_body:
                found.append(f"request body: {media} no longer accepted")
            continue
        changes = breaking_changes(
            _schema(old, content.get("schema"), closed=True),  # clients send what is shown
            _schema(new, new_body["content"][media].get("schema")),
        )
        found += _words(changes, "request body", REQUEST_BREAKS)
    return found


def _responses(
    old: Mapping[str, Any], new: Mapping[str, Any], old_op: dict[str, Any], new_op: dict[str, Any]
) -> list[str]:
    found: list[str] = []
    new_responses = new_op.get("responses", {})
    for status, raw in old_op.get("responses", {}).items():
        if not str(status).startswith("2"):
            continue
        if status not in new_responses:
            found.append(f"status {status}: no longer answered")
            continue
        before = _resolve(old, raw)
        after = _resolve(new, new_responses[status])
        for media, content in before.get("content", {}).items():
            if media not in after.get("content", {}):
                if "json" in media and not content.get("schema") and after.get("content"):
                    continue  # an untyped "JSON" that was a file all along: now documented
                found.append(f"status {status}: {media} no longer answered")
                continue
            old_schema = _schema(old, content.get("schema"))
            new_schema = _schema(new, after["content"][media].get("schema"), closed=True)
            where = f"answer {status}"
            found += _words(old_reader_refusals(old_schema, new_schema), where, ANSWER_BREAKS)
            found += [
                f"{where}{path}: {what}"
                for path, what in _lost(
                    old, new, content.get("schema"), after["content"][media].get("schema")
                )
            ]
    return found


def _lost(
    old: Mapping[str, Any], new: Mapping[str, Any], a: Any, b: Any, path: str = "", depth: int = 0
) -> Iterator[tuple[str, str]]:
    """(path, what) of what an answer's old schema ``a`` had and ``b`` no longer has: an
    enum value, an optional property (a required one is ``old_reader_refusals``'s)."""
    if depth > 30:
        return
    a, b = _resolve(old, a), _resolve(new, b)
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        return
    old_values, new_values = _enum(old, a), _enum(new, b)
    if old_values is not None and new_values is not None:
        for value in old_values:
            if value not in new_values:
                yield path, f"enum value {value!r} removed"
    a_props, b_props = _props(old, a), _props(new, b)
    required = {name for branch in _branches(old, a) for name in branch.get("required", [])}
    for name, schema in a_props.items():
        if name in b_props:
            yield from _lost(old, new, schema, b_props[name], f"{path}.{name}", depth + 1)
        elif name not in required and (b_props or (_enum(new, b) is None and "type" in b)):
            yield f"{path}.{name}", "property removed"
    a_items, b_items = _items(old, a), _items(new, b)
    if a_items is not None and b_items is not None:
        yield from _lost(old, new, a_items, b_items, f"{path}[]", depth + 1)


def _branches(doc: Mapping[str, Any], schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    alts = [*schema.get("anyOf", []), *schema.get("oneOf", []), *schema.get("allOf", [])]
    return [schema, *(_resolve(doc, alt) for alt in alts)]


def _enum(doc: Mapping[str, Any], schema: Mapping[str, Any]) -> list[Any] | None:
    values: list[Any] = []
    for branch in _branches(doc, schema):
        if "enum" in branch:
            values += branch["enum"]
        elif "const" in branch:
            values.append(branch["const"])
    return values or None


def _props(doc: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for branch in _branches(doc, schema):
        out.update(branch.get("properties", {}))
    return out


def _items(doc: Mapping[str, Any], schema: Mapping[str, Any]) -> Any:
    for branch in _branches(doc, schema):
        if isinstance(branch.get("items"), Mapping):
            return branch["items"]
    return None
