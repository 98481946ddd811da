"""Zipkin's protobuf span format (`zipkin.proto3`), the body Envoy's Zipkin tracer sends
with `collector_endpoint_version: HTTP_PROTO` (`Content-Type: application/x-protobuf`).

No Python package ships these messages (xds-protos has Envoy's tracer config, not
Zipkin's spans), so the schema is declared here as a FileDescriptorProto and the message
classes are made from it. The schema is openzipkin/zipkin-api's `zipkin.proto3`
(package `zipkin.proto3`): only the fields plait reads and their wire numbers matter;
unknown fields are skipped by the decoder, as protobuf does.

    message ListOfSpans { repeated Span spans = 1; }
    message Span { bytes trace_id = 1; bytes parent_id = 2; bytes id = 3; Kind kind = 4;
                   string name = 5; fixed64 timestamp = 6; uint64 duration = 7;
                   Endpoint local_endpoint = 8; Endpoint remote_endpoint = 9;
                   repeated Annotation annotations = 10; map<string, string> tags = 11;
                   bool debug = 12; bool shared = 13; }
    message Endpoint { string service_name = 1; bytes ipv4 = 2; bytes ipv6 = 3; int32 port = 4; }
    message Annotation { fixed64 timestamp = 1; string value = 2; }
    enum Kind { SPAN_KIND_UNSPECIFIED = 0; CLIENT = 1; SERVER = 2; PRODUCER = 3; CONSUMER = 4; }
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "zipkin.proto3"
KINDS = {0: "", 1: "CLIENT", 2: "SERVER", 3: "PRODUCER", 4: "CONSUMER"}

_F = descriptor_pb2.FieldDescriptorProto


def _message(
    file: descriptor_pb2.FileDescriptorProto,
    name: str,
    fields: list[tuple[str, int, int, int, str]],
) -> descriptor_pb2.DescriptorProto:
    message = file.message_type.add(name=name)
    for field_name, number, kind, label, type_name in fields:
        f = message.field.add(name=field_name, number=number, type=kind, label=label)
        if type_name:
            f.type_name = type_name
    return message


def _schema() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="plait/zipkin.proto3.proto", package=PACKAGE, syntax="proto3"
    )
    kind = file.enum_type.add(name="Kind")
    for number, value in KINDS.items():
        kind.value.add(name=value or "SPAN_KIND_UNSPECIFIED", number=number)
    one, many = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    _message(file, "Endpoint", [
        ("service_name", 1, _F.TYPE_STRING, one, ""),
        ("ipv4", 2, _F.TYPE_BYTES, one, ""),
        ("ipv6", 3, _F.TYPE_BYTES, one, ""),
        ("port", 4, _F.TYPE_INT32, one, ""),
    ])  # fmt: skip
    _message(file, "Annotation", [
        ("timestamp", 1, _F.TYPE_FIXED64, one, ""),
        ("value", 2, _F.TYPE_STRING, one, ""),
    ])  # fmt: skip
    span = _message(file, "Span", [
        ("trace_id", 1, _F.TYPE_BYTES, one, ""),
        ("parent_id", 2, _F.TYPE_BYTES, one, ""),
        ("id", 3, _F.TYPE_BYTES, one, ""),
        ("kind", 4, _F.TYPE_ENUM, one, f".{PACKAGE}.Kind"),
        ("name", 5, _F.TYPE_STRING, one, ""),
        ("timestamp", 6, _F.TYPE_FIXED64, one, ""),
        ("duration", 7, _F.TYPE_UINT64, one, ""),
        ("local_endpoint", 8, _F.TYPE_MESSAGE, one, f".{PACKAGE}.Endpoint"),
        ("remote_endpoint", 9, _F.TYPE_MESSAGE, one, f".{PACKAGE}.Endpoint"),
        ("annotations", 10, _F.TYPE_MESSAGE, many, f".{PACKAGE}.Annotation"),
        ("tags", 11, _F.TYPE_MESSAGE, many, f".{PACKAGE}.Span.TagsEntry"),
        ("debug", 12, _F.TYPE_BOOL, one, ""),
        ("shared", 13, _F.TYPE_BOOL, one, ""),
    ])  # fmt: skip
    entry = span.nested_type.add(name="TagsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=one)
    entry.field.add(name="value", number=2, type=_F.TYPE_STRING, label=one)
    _message(file, "ListOfSpans", [("spans", 1, _F.TYPE_MESSAGE, many, f".{PACKAGE}.Span")])
    return file


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_schema())
ListOfSpans: Any = message_factory.GetMessageClass(
    _pool.FindMessageTypeByName(f"{PACKAGE}.ListOfSpans")
)
Span: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{PACKAGE}.Span"))
