"""Loading YAML text, files and directory trees into typed resources.

Nothing here raises: every problem (unreadable file, YAML syntax, unknown kind, invalid
field, duplicate resource) becomes a ConfigMessage, and a bad document is skipped while
every other document still loads. Document indexes count every `---` document from 0,
empty ones included, so that an index always points at the document a user sees.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from plait.api.applied import unapplied_warnings
from plait.api.common import KubeModel
from plait.api.kinds import (
    KINDS,
    KNOWN_GROUPS,
    STRICT_GROUPS,
    KindInfo,
    Resource,
    group_of,
    resource_key,
)
from plait.api.messages import Where, closest, field_names, validation_messages
from plait.api.result import Loaded, LoadResult, Source
from plait.errors import ConfigMessage, Severity

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

SUFFIXES = (".yaml", ".yml")
_MARKER = re.compile(r"^---(?=[ \t]|$)", re.MULTILINE)
_NOT_CONTENT = re.compile(r"^\s*(#.*|%.*)?$")


def load_text(text: str, file: str) -> LoadResult:
    """Every resource in a multi-document YAML text; `file` names it in messages."""
    loader = _Loader()
    loader.load_text(text, file)
    return loader.result()


def load_object(document: dict[str, Any], file: str) -> LoadResult:
    """One already-parsed document (an object from the Kubernetes API); `file` names it."""
    loader = _Loader()
    try:
        loader.load_document(document, Where(file, 0))
    except Exception as exc:  # the contract: nothing here raises
        text = f"plait failed on this object ({type(exc).__name__}: {exc}); please report"
        loader.add(Where(file, 0).message("", text))
    return loader.result()


def load_path(path: Path) -> LoadResult:
    """A YAML file, or every `*.yaml`/`*.yml` below a directory (sorted; hidden skipped)."""
    loader = _Loader()
    if path.is_dir():
        files = yaml_files(path)
        if not files:
            where = Where(str(path), 0)
            loader.add(where.message("", "no *.yaml or *.yml files here", Severity.WARNING))
        for file in files:
            loader.load_file(file)
    elif path.exists():
        loader.load_file(path)
    else:
        loader.add(Where(str(path), 0).message("", "no such file or directory"))
    return loader.result()


def yaml_files(root: Path) -> list[Path]:
    """YAML files below `root` in sorted order, skipping hidden files and directories."""
    found: list[Path] = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(
            Path(directory, f) for f in files if f.endswith(SUFFIXES) and not f.startswith(".")
        )
    return sorted(found)


def split_documents(text: str) -> list[tuple[int, str]]:
    """(first line, text) of each YAML document, as PyYAML would number them.

    Splitting first means a syntax error in one document spoils only that one.
    """
    starts = [m.start() for m in _MARKER.finditer(text)]
    head = text[: starts[0]] if starts else text
    chunks: list[tuple[int, str]] = []
    if not all(_NOT_CONTENT.match(line) for line in head.splitlines()):
        chunks.append((0, head))
        head = ""
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        line = text.count("\n", 0, start)
        if head:  # comments or directives before the first marker belong to it
            chunks.append((0, head + text[start:end]))
            head = ""
        else:
            chunks.append((line, text[start:end]))
    return chunks


class _StrictKeysLoader(_SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_COLON_END = re.compile(r"(?<=[\[,{\s])([0-9A-Fa-f.]*:[0-9A-Fa-f:.]*:)(?=[ \t]*[\],}])")
"""A plain scalar ending in ':' inside a flow collection: an IPv6 address like `001:db8::`."""


def _load_yaml(text: str) -> Any:
    """One YAML document. Go's YAML parser (Kubernetes, Istio) reads `[1.2.3.4, 001:db8::]`
    as two strings, libyaml as a syntax error; a document that fails only for that is read
    again with such addresses quoted."""
    try:
        return yaml.load(text, Loader=_StrictKeysLoader)
    except yaml.scanner.ScannerError:
        quoted = _COLON_END.sub(r"'\1'", text)
        if quoted == text:
            raise
    try:
        return yaml.load(quoted, Loader=_StrictKeysLoader)
    except yaml.YAMLError:
        return yaml.load(text, Loader=_StrictKeysLoader)  # report the original error


@dataclass
class _Loader:
    resources: list[Loaded] = field(default_factory=list)
    messages: list[ConfigMessage] = field(default_factory=list)
    seen: dict[tuple[str, str, str], Source] = field(default_factory=dict)

    def result(self) -> LoadResult:
        return LoadResult(tuple(self.resources), tuple(self.messages))

    def add(self, message: ConfigMessage) -> None:
        self.messages.append(message)

    def load_file(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.add(Where(str(path), 0).message("", f"cannot read this file: {reason}"))
            return
        self.load_text(text, str(path))

    def load_text(self, text: str, file: str) -> None:
        for index, (first_line, chunk) in enumerate(split_documents(text)):
            where = Where(file, index)
            try:
                document = _load_yaml(chunk)
            except yaml.YAMLError as exc:
                self.add(where.message("", _yaml_error(exc, chunk, first_line)))
                continue
            except (ValueError, TypeError, RecursionError) as exc:  # e.g. a date like 2024-13-45
                self.add(where.message("", f"YAML value that cannot be read: {exc}"))
                continue
            if document is None:
                continue
            try:
                self.load_document(document, where)
            except Exception as exc:  # the contract: one document never stops the others
                text = f"plait failed on this document ({type(exc).__name__}: {exc}); please report"
                self.add(where.message("", text))

    def load_document(self, document: Any, where: Where) -> None:
        if not isinstance(document, dict):
            self.add(where.message("", "expected a mapping with apiVersion, kind, metadata, spec"))
            return
        info = self._kind_info(document, where)
        if info is None or info.model is None:
            return
        where = _named(where, info.kind, document)
        try:
            resource: Resource = info.model.model_validate(document)
        except ValidationError as exc:
            for message in validation_messages(exc, info.model, where):
                self.add(message)
            return
        key = resource_key(resource)
        first = self.seen.get(key)
        if first is not None:
            self.add(
                where.message(
                    "metadata.name",
                    f"{info.kind} {key[1]}/{key[2]} is already defined in {first.file} "
                    f"document {first.document}; this one is ignored. Rename one of them",
                )
            )
            return
        loaded = Loaded(resource, Source(where.file, where.document))
        self.seen[key] = loaded.source
        self.resources.append(loaded)
        for path, text in stray_kube_fields(resource, ""):
            self.add(where.message(path, text, Severity.WARNING))
        self.messages.extend(unapplied_warnings(loaded))

    def _kind_info(self, document: dict[str, Any], where: Where) -> KindInfo | None:
        """The entry for the document's kind, or None after reporting why it is skipped."""
        api_version, kind = document.get("apiVersion"), document.get("kind")
        for key, value in (("apiVersion", api_version), ("kind", kind)):
            if value is None:
                self.add(where.message(key, f"'{key}' is required, e.g. {_EXAMPLE[key]}"))
            elif not isinstance(value, str):
                self.add(where.message(key, f"'{key}' must be a string, e.g. {_EXAMPLE[key]}"))
        if not isinstance(api_version, str) or not isinstance(kind, str):
            return None
        where = _named(where, kind, document)
        info = KINDS.get(kind)
        group = group_of(api_version)
        strict = STRICT_GROUPS.get(group)
        if strict is not None and kind not in strict and info is None:
            hint = closest(kind, sorted(strict), cutoff=0.6)
            text = f"{group} has no kind {kind}"
            text += (
                f" (did you mean {hint}?)" if hint else f"; its kinds: {', '.join(sorted(strict))}"
            )
            self.add(where.message("kind", text))
            return None
        if info is None:
            hint = closest(kind, list(KINDS), cutoff=0.8)
            text = f"kind {kind} is not supported by plait; ignored"
            text += f" (did you mean {hint}?)" if hint else ""
            self.add(where.message("kind", text, Severity.WARNING))
            return None
        if api_version not in info.versions:
            group = group_of(api_version)
            if group in KNOWN_GROUPS or closest(group, list(KNOWN_GROUPS), cutoff=0.8):
                self.add(
                    where.message(
                        "apiVersion",
                        f"apiVersion '{api_version}' is not valid for {kind}; "
                        f"use one of {', '.join(info.versions)}",
                    )
                )
            else:
                self.add(
                    where.message(
                        "kind",
                        f"kind {kind} of apiVersion {api_version} is not supported by plait; "
                        "ignored",
                        Severity.WARNING,
                    )
                )
            return None
        if info.model is None:
            self.add(
                where.message(
                    "kind",
                    f"{kind} is understood by plait but not applied yet; "
                    "this document has no effect for now",
                    Severity.WARNING,
                )
            )
        return info


_EXAMPLE = {"apiVersion": "'apiVersion: networking.istio.io/v1'", "kind": "'kind: VirtualService'"}


def _named(where: Where, kind: str, document: dict[str, Any]) -> Where:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return Where(where.file, where.document, kind, name if isinstance(name, str) else "")


def _yaml_error(exc: yaml.YAMLError, chunk: str, first_line: int) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        problem += f" ({context} at line {first_line + context_mark.line + 1})"
    elif context:
        problem += f" ({context})"
    if mark is None:
        return f"YAML syntax error: {problem}"
    lines = chunk.splitlines()
    if mark.line < len(lines) and "\t" in lines[mark.line]:
        problem += "; indent with spaces, YAML does not allow tabs"
    line, column = first_line + mark.line + 1, mark.column + 1
    return f"YAML syntax error at line {line}, column {column}: {problem}"


def stray_kube_fields(model: BaseModel, path: str) -> list[tuple[str, str]]:
    """Keys of Kubernetes objects that are neither modelled nor known Kubernetes fields."""
    out: list[tuple[str, str]] = []
    if isinstance(model, KubeModel):
        for key in model.model_extra or {}:
            if key in type(model).KNOWN:
                continue
            where = f"{path}.{key}" if path else key
            hint = closest(key, [*field_names(type(model)), *type(model).KNOWN], cutoff=0.75)
            text = f"unknown field '{key}' is ignored" + (
                f"; did you mean '{hint}'?" if hint else ""
            )
            out.append((where, text))
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        key = info.alias or name
        sub = f"{path}.{key}" if path else key
        if isinstance(value, BaseModel):
            out.extend(stray_kube_fields(value, sub))
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    out.extend(stray_kube_fields(item, f"{sub}[{i}]"))
    return out
