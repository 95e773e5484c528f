"""The topic catalogue (contracts/topics.yaml) and its idempotent creation on a cluster."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from pydantic import BaseModel, ConfigDict, Field

from fraudops.errors import ConfigurationError
from fraudops.paths import contracts_dir

log = logging.getLogger(__name__)


class TopicSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-zA-Z0-9._-]{1,200}$")
    key: str
    value_schema: str
    partitions: int = Field(ge=1, le=1000)
    retention_ms: int = Field(ge=-1)
    cleanup_policy: Literal["delete", "compact", "compact,delete"]

    def configs(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}


class TopicCatalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    topics: list[TopicSpec]

    def get(self, name: str) -> TopicSpec:
        for spec in self.topics:
            if spec.name == name:
                return spec
        raise ConfigurationError(f"topic {name!r} is not in topics.yaml")


def load_topic_catalog(path: Path | None = None) -> TopicCatalog:
    source = path or contracts_dir() / "topics.yaml"
    return TopicCatalog.model_validate(yaml.safe_load(source.read_text()))


async def ensure_topics(bootstrap_servers: str, catalog: TopicCatalog, replication_factor: int = 1) -> dict[str, str]:
    """Create missing topics and grow partition counts; never shrink or delete. Returns what happened per topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=15_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        outcome: dict[str, str] = {}
        missing = [spec for spec in catalog.topics if spec.name not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(s.name, s.partitions, replication_factor, topic_configs=s.configs()) for s in missing]
            )
            # aiokafka reports per-topic failures as codes in the response instead of raising.
            for error in response.topic_errors:
                name, code = error[0], error[1]
                if code == TopicAlreadyExistsError.errno:
                    outcome[name] = "exists"
                elif code != 0:
                    raise for_code(code)(f"creating topic {name} failed: {error[2] if len(error) > 2 else ''}")
                else:
                    outcome[name] = "created"
        present = [spec for spec in catalog.topics if spec.name in existing]
        if present:
            described = await admin.describe_topics([s.name for s in present])
            counts = {d["topic"]: len(d["partitions"]) for d in described}
            grow = {s.name: NewPartitions(s.partitions) for s in present if counts.get(s.name, 0) < s.partitions}
            if grow:
                await admin.create_partitions(grow)
            for spec in present:
                outcome[spec.name] = "partitions increased" if spec.name in grow else "exists"
        log.info("topics ensured", extra={"topics": outcome})
        return outcome
    finally:
        await admin.close()
