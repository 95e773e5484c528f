"""Avro single-object encoding: every message names its writer schema by fingerprint.

Layout (Avro specification, "Single object encoding"): two marker bytes C3 01, the 8-byte
CRC-64-AVRO fingerprint of the writer schema's parsing canonical form, then the Avro binary body.
A reader looks the fingerprint up among the schemas it knows and resolves to its own (newest)
version, so old messages stay readable and unknown or corrupt ones are refused, never mis-read.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from fraudops.errors import ConfigurationError, CorruptMessageError, UnknownSchemaError
from fraudops.paths import contracts_dir

MAGIC = b"\xc3\x01"
HEADER_LENGTH = len(MAGIC) + 8


@dataclass(frozen=True)
class SchemaVersion:
    """One version of a record schema as found in contracts/avro."""

    name: str
    version: int
    parsed: Any
    fingerprint: bytes


class SchemaCatalog:
    """All schema versions found in a folder of `<name>.v<N>.avsc` files."""

    def __init__(self, versions: list[SchemaVersion]) -> None:
        self._by_fingerprint = {v.fingerprint: v for v in versions}
        self._latest: dict[str, SchemaVersion] = {}
        for version in sorted(versions, key=lambda v: v.version):
            self._latest[version.name] = version

    @classmethod
    def from_directory(cls, directory: Path) -> SchemaCatalog:
        versions = []
        for path in sorted(directory.glob("*.avsc")):
            stem, _, suffix = path.stem.rpartition(".v")
            if not stem or not suffix.isdigit():
                raise ConfigurationError(f"{path.name}: schema files are named <name>.v<N>.avsc")
            raw = json.loads(path.read_text())
            parsed = cast(dict[str, Any], parse_schema(raw))
            canonical = to_parsing_canonical_form(parsed)
            versions.append(
                SchemaVersion(
                    name=parsed["name"],
                    version=int(suffix),
                    parsed=parsed,
                    fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
                )
            )
        if not versions:
            raise ConfigurationError(f"no Avro schemas in {directory}")
        return cls(versions)

    @property
    def names(self) -> list[str]:
        return sorted(self._latest)

    def latest(self, name: str) -> SchemaVersion:
        try:
            return self._latest[name]
        except KeyError:
            raise UnknownSchemaError(f"no schema named {name}") from None

    def by_fingerprint(self, value: bytes) -> SchemaVersion | None:
        return self._by_fingerprint.get(value)


class AvroCodec:
    """Encode and decode records of one catalogue."""

    def __init__(self, catalog: SchemaCatalog) -> None:
        self.catalog = catalog

    def encode(self, schema_name: str, record: Mapping[str, Any]) -> bytes:
        writer = self.catalog.latest(schema_name)
        buffer = io.BytesIO()
        buffer.write(MAGIC)
        buffer.write(writer.fingerprint)
        schemaless_writer(buffer, writer.parsed, dict(record))
        return buffer.getvalue()

    def decode(self, payload: bytes | None, expected: str | None = None) -> dict[str, Any]:
        """Decode a message; raise CorruptMessageError or UnknownSchemaError instead of guessing."""
        if payload is None:
            raise CorruptMessageError("empty message (null value)")
        if len(payload) < HEADER_LENGTH or payload[: len(MAGIC)] != MAGIC:
            raise CorruptMessageError("not an Avro single-object message (bad marker bytes)")
        writer = self.catalog.by_fingerprint(payload[len(MAGIC) : HEADER_LENGTH])
        if writer is None:
            raise UnknownSchemaError(f"unknown writer schema fingerprint {payload[2:HEADER_LENGTH].hex()}")
        if expected is not None and writer.name != expected:
            raise UnknownSchemaError(f"expected a {expected} message, got {writer.name}")
        reader = self.catalog.latest(writer.name)
        body = io.BytesIO(payload[HEADER_LENGTH:])
        try:
            record = schemaless_reader(body, writer.parsed, reader.parsed)
        except Exception as exc:
            # fastavro signals truncated or garbled bodies with EOFError, ValueError, IndexError,
            # UnicodeDecodeError and others: all mean the same thing here.
            raise CorruptMessageError(f"{writer.name} body cannot be decoded: {exc.__class__.__name__}") from exc
        if body.tell() != len(payload) - HEADER_LENGTH:
            raise CorruptMessageError(
                f"{writer.name} body has {len(payload) - HEADER_LENGTH - body.tell()} trailing bytes"
            )
        if not isinstance(record, dict):
            raise CorruptMessageError(f"{writer.name} did not decode to a record")
        return record


@cache
def default_codec() -> AvroCodec:
    """The codec over the repository's (or image's) contracts/avro folder."""
    return AvroCodec(SchemaCatalog.from_directory(contracts_dir() / "avro"))
