"""Is a new JSON Schema of an event compatible with the old one? Pure: no I/O.

``breaking_changes(old, new)`` lists, in plain words, what makes the new schema refuse a
document the old one accepts (backward compatibility: the code built on ``new`` must read
every entry written under ``old``: an outside publisher that has not changed, an entry
already in a stream and replayed, a dead letter replayed). That is the rule the contract
guard enforces; see docs/VERSIONING.md.

``old_reader_refusals(old, new)`` is the other direction (forward compatibility): what a
reader built on ``old`` refuses among the documents ``new`` allows. Our contracts refuse
unknown fields, so even an added optional field shows here; the guard only reports it.

Both answer the question "is every document valid under A valid under B?" structurally:
``$ref`` (local), ``allOf``, ``anyOf``/``oneOf`` (a document matches one branch; ``oneOf``
is read as ``anyOf``: pydantic emits it only for discriminated unions, disjoint by their
tag), type lists, ``enum``/``const``, objects (``properties``, ``required``,
``additionalProperties``, ``propertyNames``, sizes), arrays (``items``, ``prefixItems``,
sizes, ``uniqueItems``), strings (lengths, ``pattern``, ``format``, ``contentSchema``) and
numbers (bounds, ``multipleOf``), recursively. Annotations (``title``, ``description``,
``examples``...) never matter; the ``default`` of an optional field does (backward): an old
entry that omits the field takes it. A keyword the checker does not understand that
differs between the two is reported as a change it cannot prove compatible: it may report a
compatible change, it should not miss a breaking one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

__all__ = ["Change", "breaking_changes", "describe", "old_reader_refusals"]

Schema = Mapping[str, Any]

ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "example",
        "$comment",
        "$schema",
        "$id",
        "$anchor",
        "$defs",
        "definitions",
        "deprecated",
        "readOnly",
        "writeOnly",
        "discriminator",
    }
)
"""Keywords that never change which documents are valid."""

_LOWER = {"minLength": 0, "minItems": 0, "minProperties": 0}
_UPPER = ("maxLength", "maxItems", "maxProperties")
_BY_TYPE: dict[str, frozenset[str]] = {
    "string": frozenset(
        {"minLength", "maxLength", "pattern", "format", "contentMediaType", "contentSchema"}
    ),
    "number": frozenset(
        {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
    ),
    "array": frozenset(
        {"items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains", "minContains"}
        | {"maxContains", "unevaluatedItems"}
    ),
    "object": frozenset(
        {"properties", "required", "additionalProperties", "minProperties", "maxProperties"}
        | {"propertyNames", "patternProperties", "dependentRequired", "dependentSchemas"}
        | {"unevaluatedProperties"}
    ),
}
_BY_TYPE["integer"] = _BY_TYPE["number"]
_TYPED = frozenset().union(*_BY_TYPE.values())
_HANDLED = _TYPED - {
    "contains",
    "minContains",
    "maxContains",
    "unevaluatedItems",
    "patternProperties",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedProperties",
} | {"type", "enum", "const", "$ref", "allOf", "anyOf", "oneOf"}
_JSON_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
_ABSENT = object()
_NOTHING: dict[str, Any] = {"not": {}}
"""The schema no document matches (``false``)."""


@dataclass(frozen=True)
class Change:
    """One incompatibility: where (``data.deficits[].level``; empty for the whole document),
    what kind, and what, in plain words."""

    path: str
    kind: str
    """removed | added | retyped | nullable | required | enum | format | constraint |
    closed | default | unproven"""
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(document)'}: {self.message}"


def breaking_changes(old: Schema, new: Schema) -> list[Change]:
    """What makes ``new`` refuse a document that ``old`` accepts (backward compatibility).

    Both are whole JSON Schema documents; their ``$ref`` resolve against their own root.
    An empty list means: every document valid under ``old`` is valid under ``new``, and no
    field of ``old`` was dropped.
    """
    return _Checker(old, new, forward=False).run()


def old_reader_refusals(old: Schema, new: Schema) -> list[Change]:
    """What a reader built on ``old`` refuses among the documents ``new`` allows (forward
    compatibility): fields it does not know, enum values it does not know, looser bounds."""
    return _Checker(new, old, forward=True).run()


def describe(changes: Iterable[Change]) -> str:
    """The changes, one per line."""
    return "\n".join(f"  - {change}" for change in changes)


# --- the checker ---------------------------------------------------------------------------


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Checker:
    """Is every document valid under ``a`` valid under ``b``?

    Backward: ``a`` is the old schema, ``b`` the new one. Forward: ``a`` is the new schema
    and ``b`` the old one (a reader on the old contract); only the wording differs.
    """

    def __init__(self, a: Schema, b: Schema, *, forward: bool) -> None:
        self.a_root, self.b_root = a, b
        self.forward = forward
        self.active: set[tuple[str, str]] = set()
        self.changes: list[Change] = []

    def run(self) -> list[Change]:
        found = self.compare(self.a_root, self.b_root, "")
        unique: list[Change] = []
        for change in found:
            if change not in unique:
                unique.append(change)
        return unique

    # wording: old and new are (a, b) backward and (b, a) forward
    def old_new(self, a_value: Any, b_value: Any) -> tuple[Any, Any]:
        return (b_value, a_value) if self.forward else (a_value, b_value)

    def change(self, path: str, kind: str, backward: str, forward: str) -> Change:
        return Change(path, kind, forward if self.forward else backward)

    # --- normalisation ---------------------------------------------------------------------

    def resolve(self, node: Any, root: Schema, seen: frozenset[str] = frozenset()) -> Any:
        """``node`` with its ``$ref`` and ``allOf`` merged in (a conjunction)."""
        if node is True:
            return {}
        if node is False:
            return _NOTHING
        if not isinstance(node, Mapping):
            return {"x-invalid-schema": node}
        node = dict(node)
        ref = node.pop("$ref", None)
        if isinstance(ref, str):
            target = _pointer(root, ref)
            if target is None or ref in seen:
                node["x-unresolved-ref"] = ref
            else:
                node = _conj(self.resolve(target, root, seen | {ref}), node)
        branches = node.pop("allOf", None)
        if isinstance(branches, list):
            for branch in branches:
                node = _conj(node, self.resolve(branch, root, seen))
        return node

    def alternatives(self, node: Any, root: Schema, depth: int = 0) -> list[dict[str, Any]]:
        """The schema as a union of alternatives, each without ``anyOf``/``oneOf`` and of
        at most one type: a document matches the schema iff it matches one of them."""
        node = self.resolve(node, root)
        if node == _NOTHING:
            return []
        for key in ("anyOf", "oneOf"):
            branches = node.get(key)
            if isinstance(branches, list) and depth < 16:
                rest = {k: v for k, v in node.items() if k != key}
                out: list[dict[str, Any]] = []
                for branch in branches:
                    merged = _conj(rest, self.resolve(branch, root))
                    out.extend(self.alternatives(merged, root, depth + 1))
                return out
        types = node.get("type")
        if isinstance(types, list):
            return [_only_type(node, t) for t in types if isinstance(t, str)]
        return [node]

    # --- comparison ------------------------------------------------------------------------

    def compare(self, a: Any, b: Any, path: str) -> list[Change]:
        key = (_ref_of(a), _ref_of(b))
        if key[0] and key[1]:
            if key in self.active:  # a recursive schema: assume the pair holds (coinduction)
                return []
            self.active.add(key)
        try:
            return self._compare(a, b, path)
        finally:
            self.active.discard(key)

    def _compare(self, a: Any, b: Any, path: str) -> list[Change]:
        a_alts = self.alternatives(a, self.a_root)
        b_alts = self.alternatives(b, self.b_root)
        if not a_alts:
            return []
        if not b_alts:
            return [
                self.change(
                    path,
                    "removed",
                    "no value is accepted any more",
                    "any value here is refused by a reader of the old contract",
                )
            ]
        if any(not set(b) - ANNOTATIONS for b in b_alts):
            return []  # ``b`` accepts anything
        found: list[Change] = []
        for alt in a_alts:
            found.extend(self.cover(alt, b_alts, path))
        return found

    def cover(self, a: dict[str, Any], b_alts: list[dict[str, Any]], path: str) -> list[Change]:
        """Changes unless one of ``b_alts`` accepts every document ``a`` accepts."""
        values = _values(a)
        if values is not None:
            return self.cover_values(a, values, b_alts, path)
        a_type = _type_of(a)
        candidates = [b for b in b_alts if _type_fits(a_type, _type_of(b))]
        if not candidates:
            return [self.type_change(a_type, b_alts, path)]
        best: list[Change] | None = None
        for b in candidates:
            found = self.alt(a, b, a_type, path)
            if not found:
                return []
            if best is None or len(found) < len(best):
                best = found
        return best or []

    def cover_values(
        self, a: dict[str, Any], values: list[Any], b_alts: list[dict[str, Any]], path: str
    ) -> list[Change]:
        refused: list[Any] = []
        unsure: list[Any] = []
        for value in values:
            verdicts = [_accepts(b, value) for b in b_alts]
            if True in verdicts:
                continue
            (unsure if None in verdicts else refused).append(value)
        found: list[Change] = []
        if refused:
            b_types: set[str | None] = {_type_of(b) for b in b_alts}
            if not any(_type_fits(_json_type(v), t) for v in refused for t in b_types):
                a_types = {_json_type(v) for v in values}
                a_type = _type_of(a) or (a_types.pop() if len(a_types) == 1 else None)
                found.append(self.type_change(a_type, b_alts, path))
            else:
                shown = ", ".join(_show(v) for v in refused)
                found.append(
                    self.change(
                        path,
                        "enum",
                        f"value(s) {shown} no longer accepted (enum narrowed)",
                        f"new value(s) {shown}, refused by a reader of the old contract "
                        "(enum widened)",
                    )
                )
        if unsure:
            shown = ", ".join(_show(v) for v in unsure)
            found.append(
                self.change(
                    path,
                    "unproven",
                    f"cannot prove value(s) {shown} are still accepted",
                    f"cannot prove a reader of the old contract accepts value(s) {shown}",
                )
            )
        return found

    def type_change(self, a_type: str | None, b_alts: list[dict[str, Any]], path: str) -> Change:
        b_types = sorted({_type_of(b) or "any" for b in b_alts})
        old, new = self.old_new(a_type or "any", "|".join(b_types))
        if a_type == "null":
            return self.change(
                path,
                "nullable",
                "no longer accepts null (was nullable)",
                "may now be null, which a reader of the old contract refuses",
            )
        return self.change(
            path,
            "retyped",
            f"type changed from {old} to {new}",
            f"type changed from {old} to {new}; a reader of the old contract refuses it",
        )

    def alt(
        self, a: dict[str, Any], b: dict[str, Any], a_type: str | None, path: str
    ) -> list[Change]:
        """Changes of one alternative against one of the same type."""
        found: list[Change] = []
        relevant = _BY_TYPE.get(a_type, frozenset()) if a_type else _TYPED
        b_values = _values(b)
        if b_values is not None:
            old, new = self.old_new("any value", ", ".join(_show(v) for v in b_values))
            found.append(
                self.change(
                    path,
                    "enum",
                    f"now restricted to {new}",
                    f"no longer restricted to {old}, which a reader of the old contract expects",
                )
            )
        if a_type in ("string", None):
            found += self.sizes(a, b, path, "minLength", "maxLength")
            found += self.same_or_absent(a, b, path, "pattern", "format")
            found += self.content(a, b, path)
        if a_type in ("number", "integer") or not a_type:
            found += self.bounds(a, b, path)
        if a_type == "array" or not a_type:
            found += self.sizes(a, b, path, "minItems", "maxItems")
            found += self.array(a, b, path)
        if a_type == "object" or not a_type:
            found += self.sizes(a, b, path, "minProperties", "maxProperties")
            found += self.object(a, b, path)
        for key in sorted((set(a) | set(b)) - ANNOTATIONS - _HANDLED):
            if key in _TYPED and a_type and key not in relevant:
                continue
            if a.get(key) != b.get(key):
                old, new = self.old_new(a.get(key), b.get(key))
                found.append(
                    self.change(
                        path,
                        "unproven",
                        f"{key} changed from {_show(old)} to {_show(new)}: not proven compatible",
                        f"{key} changed from {_show(old)} to {_show(new)}: not proven "
                        "readable by a reader of the old contract",
                    )
                )
        return found

    def tightened(self, path: str, key: str, a_value: Any, b_value: Any) -> Change:
        old_text, new_text = self.old_new(_render(a_value), _render(b_value))
        return self.change(
            path,
            "constraint",
            f"{key} tightened from {old_text} to {new_text}",
            f"{key} loosened from {old_text} to {new_text}: a reader of the old contract "
            "refuses the values in between",
        )

    def sizes(
        self, a: dict[str, Any], b: dict[str, Any], path: str, low: str, high: str
    ) -> list[Change]:
        found: list[Change] = []
        a_low, b_low = a.get(low, _LOWER[low]), b.get(low, _LOWER[low])
        if not (_number(a_low) and _number(b_low) and b_low <= a_low):
            found.append(self.tightened(path, low, a.get(low), b.get(low)))
        if high in b and not (_number(a.get(high)) and _number(b[high]) and b[high] >= a[high]):
            found.append(self.tightened(path, high, a.get(high), b.get(high)))
        return found

    def same_or_absent(
        self, a: dict[str, Any], b: dict[str, Any], path: str, *keys: str
    ) -> list[Change]:
        found: list[Change] = []
        for key in keys:
            if key in b and a.get(key) != b[key]:
                old, new = self.old_new(a.get(key), b.get(key))
                kind = "format" if key == "format" else "constraint"
                found.append(
                    self.change(
                        path,
                        kind,
                        f"{key} changed from {_show(old)} to {_show(new)}",
                        f"{key} changed from {_show(old)} to {_show(new)}; a reader of the "
                        "old contract refuses what the new one allows",
                    )
                )
        return found

    def content(self, a: dict[str, Any], b: dict[str, Any], path: str) -> list[Change]:
        found = self.same_or_absent(a, b, path, "contentMediaType")
        if "contentSchema" in b:
            found += self.compare(a.get("contentSchema", {}), b["contentSchema"], path)
        return found

    def bounds(self, a: dict[str, Any], b: dict[str, Any], path: str) -> list[Change]:
        found: list[Change] = []
        for side, inclusive, exclusive in (
            (1, "minimum", "exclusiveMinimum"),
            (-1, "maximum", "exclusiveMaximum"),
        ):
            a_bound, b_bound = _bound(a, inclusive, exclusive), _bound(b, inclusive, exclusive)
            if b_bound is None:
                continue
            if a_bound is None or (side * b_bound[0], b_bound[1]) > (side * a_bound[0], a_bound[1]):
                found.append(self.tightened(path, _bound_text(side), a_bound, b_bound))
        if "multipleOf" in b:
            a_step, b_step = a.get("multipleOf"), b["multipleOf"]
            if not (_number(a_step) and _number(b_step) and _divides(b_step, a_step)):
                found.append(self.tightened(path, "multipleOf", a_step, b_step))
        return found

    def array(self, a: dict[str, Any], b: dict[str, Any], path: str) -> list[Change]:
        found: list[Change] = []
        if b.get("uniqueItems") is True and a.get("uniqueItems") is not True:
            found.append(self.tightened(path, "uniqueItems", a.get("uniqueItems"), True))
        a_prefix, b_prefix = a.get("prefixItems", []), b.get("prefixItems", [])
        a_rest, b_rest = a.get("items", {}), b.get("items", {})
        if not {"items", "prefixItems"} & (set(a) | set(b)):
            return found
        for i in range(max(len(a_prefix), len(b_prefix))):
            a_item = a_prefix[i] if i < len(a_prefix) else a_rest
            b_item = b_prefix[i] if i < len(b_prefix) else b_rest
            found += self.compare(a_item, b_item, f"{path}[{i}]")
        found += self.compare(a_rest, b_rest, f"{path}[]")
        return found

    def default(self, a_prop: Any, b_prop: Any, path: str) -> list[Change]:
        """An entry that omits an optional field takes its default: a changed default
        changes what such an old entry means."""
        if not isinstance(a_prop, Mapping) or "default" not in a_prop:
            return []
        b_default = b_prop.get("default", _ABSENT) if isinstance(b_prop, Mapping) else _ABSENT
        if b_default == a_prop["default"] and b_default is not _ABSENT:
            return []
        new = "none" if b_default is _ABSENT else _show(b_default)
        return [
            Change(
                path,
                "default",
                f"default changed from {_show(a_prop['default'])} to {new}: an entry that "
                "omits the field now means something else",
            )
        ]

    def object(self, a: dict[str, Any], b: dict[str, Any], path: str) -> list[Change]:
        found: list[Change] = []
        a_props: Mapping[str, Any] = a.get("properties", {})
        b_props: Mapping[str, Any] = b.get("properties", {})
        a_extra = a.get("additionalProperties", True)
        b_extra = b.get("additionalProperties", True)
        a_required, b_required = set(a.get("required", [])), set(b.get("required", []))
        for name, a_prop in a_props.items():
            where = _join(path, name)
            if name in b_props:
                found += self.compare(a_prop, b_props[name], where)
                if not self.forward and name not in a_required:
                    found += self.default(a_prop, b_props[name], where)
            elif not self.forward:
                found.append(Change(where, "removed", "field removed"))
            elif b_extra is False:
                found.append(
                    Change(
                        where,
                        "added",
                        "new field, refused by a reader of the old contract (unknown fields "
                        "are refused)",
                    )
                )
            else:
                found += self.compare(a_prop, b_extra, where)
        for name in sorted(set(b_props) - set(a_props)):
            if a_extra is not False:  # ``a`` let any field in: its values must still pass
                found += self.compare(a_extra, b_props[name], _join(path, name))
        for name in sorted(b_required - a_required):
            where = _join(path, name)
            if self.forward:
                message = (
                    "no longer required; a reader of the old contract requires it"
                    if name in a_props
                    else "field removed; a reader of the old contract requires it"
                )
            else:
                message = "field became required" if name in a_props else "new required field"
            found.append(Change(where, "required", message))
        if a_extra is not False:
            if b_extra is False:
                old, new = self.old_new("allowed", "refused")
                found.append(
                    self.change(
                        path,
                        "closed",
                        f"fields not listed were {old}, now {new}",
                        f"fields not listed are {new}, refused by a reader of the old contract",
                    )
                )
            else:
                found += self.compare(a_extra, b_extra, f"{path}.*" if path else "*")
        if "propertyNames" in b:
            found += self.compare(
                a.get("propertyNames", {"type": "string"}), b["propertyNames"], f"{path}.<name>"
            )
        return found


# --- helpers -------------------------------------------------------------------------------


def _pointer(root: Schema, ref: str) -> Any:
    """The node a local ``$ref`` (``#/$defs/Name``) points to, or None."""
    if not ref.startswith("#"):
        return None
    node: Any = root
    for part in ref[1:].split("/")[1:] if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _ref_of(node: Any) -> str:
    return node["$ref"] if isinstance(node, Mapping) and isinstance(node.get("$ref"), str) else ""


def _conj(x: Mapping[str, Any], y: Mapping[str, Any]) -> dict[str, Any]:
    """A schema matching what both ``x`` and ``y`` match, as far as it merges simply;
    what does not merge stays as ``x-unmerged`` (compared as an unknown keyword)."""
    if x == _NOTHING or y == _NOTHING:
        return dict(_NOTHING)
    out = dict(x)
    for key, value in y.items():
        if key not in out or out[key] == value or key in ANNOTATIONS:
            out.setdefault(key, value)
            continue
        mine = out[key]
        if key == "required":
            out[key] = [*mine, *(name for name in value if name not in mine)]
        elif key == "properties":
            out[key] = {
                name: _conj(mine[name], value[name])
                if name in mine
                and name in value
                and isinstance(mine[name], Mapping)
                and isinstance(value[name], Mapping)
                else mine.get(name, value.get(name))
                for name in [*mine, *(n for n in value if n not in mine)]
            }
        elif key in ("minimum", "exclusiveMinimum", *_LOWER) and _number(mine) and _number(value):
            out[key] = max(mine, value)
        elif key in ("maximum", "exclusiveMaximum", *_UPPER) and _number(mine) and _number(value):
            out[key] = min(mine, value)
        elif key == "type":
            ta, tb = _types(mine), _types(value)
            both = ta & tb
            if ("integer" in ta and "number" in tb) or ("number" in ta and "integer" in tb):
                both.add("integer")
            if not both:
                return dict(_NOTHING)
            out[key] = sorted(both)[0] if len(both) == 1 else sorted(both)
        elif key == "enum" and isinstance(mine, list) and isinstance(value, list):
            out[key] = [v for v in mine if v in value]
        else:
            out["x-unmerged"] = [*out.get("x-unmerged", []), {key: value}]
    return out


def _types(value: Any) -> set[str]:
    return {value} if isinstance(value, str) else set(value) if isinstance(value, list) else set()


def _only_type(alt: Mapping[str, Any], type_: str) -> dict[str, Any]:
    """One type of a type list, with only its keywords."""
    keep = _BY_TYPE.get(type_, frozenset())
    return {k: v for k, v in alt.items() if k not in _TYPED or k in keep} | {"type": type_}


def _type_of(alt: Mapping[str, Any]) -> str | None:
    t = alt.get("type")
    return t if isinstance(t, str) else None


def _type_fits(a_type: str | None, b_type: str | None) -> bool:
    if b_type is None:
        return True
    if a_type is None:
        return False
    return a_type == b_type or (a_type == "integer" and b_type == "number")


def _values(alt: Mapping[str, Any]) -> list[Any] | None:
    if "const" in alt:
        return [alt["const"]]
    enum = alt.get("enum")
    return list(enum) if isinstance(enum, list) else None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _divides(step: float, other: float) -> bool:
    ratio = other / step
    return math.isclose(ratio, round(ratio), rel_tol=0, abs_tol=1e-9)


def _bound(alt: Mapping[str, Any], inclusive: str, exclusive: str) -> tuple[float, int] | None:
    """The tighter of a side's two bounds as (value, 1 if exclusive else 0), or None."""
    found = []
    if _number(alt.get(inclusive)):
        found.append((alt[inclusive], 0))
    if _number(alt.get(exclusive)):
        found.append((alt[exclusive], 1))
    if not found:
        return None
    lower = inclusive == "minimum"
    return max(found) if lower else min(found, key=lambda b: (b[0], -b[1]))


def _bound_text(side: int) -> str:
    return "minimum" if side == 1 else "maximum"


def _render(value: Any) -> str:
    """A constraint's value for people; a bound is (value, exclusive)."""
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return f"{'exclusive ' if value[1] else ''}{value[0]}"
    return _show(value)


def _accepts(alt: Mapping[str, Any], value: Any) -> bool | None:
    """Does the alternative accept the value? None: cannot tell."""
    if alt == _NOTHING:
        return False
    values = _values(alt)
    if values is not None and value not in values:
        return False
    if not _type_fits(_json_type(value), _type_of(alt)):
        return False
    unknown = set(alt) - ANNOTATIONS - {"type", "enum", "const"}
    if isinstance(value, str):
        if len(value) < alt.get("minLength", 0) or len(value) > alt.get("maxLength", math.inf):
            return False
        pattern = alt.get("pattern")
        if isinstance(pattern, str):
            try:
                if not re.search(pattern, value):
                    return False
            except re.error:
                return None
        unknown -= {"minLength", "maxLength", "pattern"}
    elif _number(value):
        for inclusive, exclusive, below in (
            ("minimum", "exclusiveMinimum", True),
            ("maximum", "exclusiveMaximum", False),
        ):
            bound = _bound(alt, inclusive, exclusive)
            if bound is not None:
                limit, strict = bound
                outside = value < limit if below else value > limit
                if outside or (strict and value == limit):
                    return False
        step = alt.get("multipleOf")
        if _number(step) and not _divides(step, value):
            return False
        unknown -= {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
    unknown -= _TYPED - _BY_TYPE.get(_json_type(value), frozenset())
    return None if unknown else True
