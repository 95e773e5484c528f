"""Apache Kafka as a plain JVM process: jars resolved by Maven from infrastructure/kafka/pom.xml."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from fraudops.paths import repo_root
from fraudops.stack.process import StackError

JAVA_HINT = "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
MAVEN_HINT = "install Maven to fetch Kafka's jars (Debian: apt-get install maven)"


def kafka_infrastructure_dir() -> Path:
    root = repo_root()
    if root is None:
        raise StackError("the local Kafka runs from a checkout of the repository (infrastructure/kafka not found)")
    return root / "infrastructure" / "kafka"


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackError(f"`{name}` not found on PATH: {hint}")
    return path


class KafkaRuntime:
    """Kafka's jars under `tools_dir/lib` and the commands that format storage and run the broker."""

    def __init__(self, tools_dir: Path) -> None:
        self.tools_dir = tools_dir
        self.lib_dir = tools_dir / "lib"
        self.infra = kafka_infrastructure_dir()
        self.pom = self.infra / "pom.xml"

    def jars_present(self) -> bool:
        stamp = self.lib_dir / ".pom"
        return stamp.exists() and stamp.read_bytes() == self.pom.read_bytes()

    def ensure_jars(self) -> bool:
        """Resolve the pinned jars once per pom version; returns True when it had to fetch them."""
        require_tool("java", JAVA_HINT)
        if self.jars_present():
            return False
        mvn = require_tool("mvn", MAVEN_HINT)
        self.tools_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="lib.", dir=self.tools_dir))
        command = [mvn, "-q", "-B", "-f", str(self.pom), "dependency:copy-dependencies", f"-DoutputDirectory={staging}"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            last = (result.stdout + result.stderr).strip().splitlines()[-5:]
            raise StackError("Maven could not fetch Kafka's jars: " + " | ".join(last))
        shutil.copyfile(self.pom, staging / ".pom")
        # Swap in the complete folder at once, so a failed fetch never leaves half a classpath behind.
        if self.lib_dir.exists():
            shutil.rmtree(self.lib_dir)
        staging.rename(self.lib_dir)
        return True

    def classpath(self) -> str:
        return str(self.lib_dir / "*")

    def write_config(self, home: Path, host: str, port: int, controller_port: int) -> Path:
        template = (self.infra / "server.properties.template").read_text()
        data_dir = home / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        config = home / "server.properties"
        config.write_text(template.format(host=host, port=port, controller_port=controller_port, data_dir=data_dir))
        return config

    def ensure_formatted(self, home: Path) -> None:
        """Format KRaft storage once; a formatted data dir keeps its cluster id across restarts."""
        if (home / "data" / "meta.properties").exists():
            return
        java = require_tool("java", JAVA_HINT)
        command = [
            java, "-Xmx256m", *self._log_options(), "-cp", self.classpath(), "kafka.tools.StorageTool", "format",
            "--config", str(home / "server.properties"), "--cluster-id", self._cluster_id(), "--standalone",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError("formatting Kafka's storage failed: " + (result.stdout + result.stderr).strip()[-500:])

    def broker_command(self, home: Path, heap: str) -> list[str]:
        java = require_tool("java", JAVA_HINT)
        return [
            # A single-node test broker: a small serial-GC heap and capped metaspace keep it near 200 MB RSS.
            java, "-Xms64m", f"-Xmx{heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-XX:ReservedCodeCacheSize=64m", "-XX:MaxMetaspaceSize=128m", "-Xss512k", "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true", *self._log_options(),
            "-cp", self.classpath(), "kafka.Kafka", str(home / "server.properties"),
        ]  # fmt: skip

    def _log_options(self) -> list[str]:
        return [f"-Dlog4j2.configurationFile={self.infra / 'log4j2.yaml'}"]

    def _cluster_id(self) -> str:
        java = require_tool("java", JAVA_HINT)
        result = subprocess.run(
            [java, "-Xmx128m", *self._log_options(), "-cp", self.classpath(), "kafka.tools.StorageTool", "random-uuid"],
            capture_output=True,
            text=True,
            check=False,
        )
        lines = result.stdout.strip().splitlines()
        if result.returncode != 0 or not lines:
            raise StackError("Kafka's StorageTool could not create a cluster id: " + result.stderr.strip()[-300:])
        return lines[-1].strip()
