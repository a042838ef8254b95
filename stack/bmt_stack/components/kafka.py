"""Apache Kafka in KRaft mode (one combined broker and controller) and Kafka Connect with
the Debezium PostgreSQL connector, both run from Maven Central jars with the installed Java."""

from __future__ import annotations

import base64
import os
import socket
import struct
from pathlib import Path

from bmt_stack import install, process
from bmt_stack.components.base import Component, http_get
from bmt_stack.config import HOST, NODE_HOST_SIDE

DEBEZIUM_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"

LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
"""


def kafka_lib(cache: Path) -> Path:
    return install.maven_libs(cache, "kafka")


def _java(heap: str, log4j: Path, classpath: Path, main: str, *args: str) -> list[str]:
    return [
        "java",
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        f"{classpath}/*",
        main,
        *args,
    ]


def _write_properties(path: Path, values: dict[str, object]) -> None:
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))


def api_versions_ok(port: int, host: str = HOST) -> str | None:
    """Send a Kafka ApiVersions request (v0); None when the broker answers without error."""
    client_id = b"bmt-stack"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = sock.recv(10)
    except OSError as exc:
        return f"no answer on port {port}: {exc.strerror or exc}"
    if len(header) < 10:
        return "broker closed the connection"
    _size, correlation, error = struct.unpack(">iih", header)
    if correlation != 1 or error != 0:
        return f"ApiVersions answered error code {error}"
    return None


class Kafka(Component):
    name = "kafka"
    start_timeout = 120.0

    @property
    def port(self) -> int:
        return self.settings.port_kafka

    @property
    def conf_dir(self) -> Path:
        return self.settings.state_dir / "conf" / self.name

    def install(self) -> None:
        self.lib = kafka_lib(self.settings.cache_dir)

    def prepare(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "log4j2.properties").write_text(LOG4J2)
        controller = f"{HOST}:{self.settings.port_kafka_controller}"
        node_port = self.settings.port_kafka_node
        # Replication factor 1 everywhere: one node must still run transactions and groups.
        _write_properties(
            self.conf_dir / "server.properties",
            {
                "process.roles": "broker,controller",
                "node.id": 1,
                "controller.quorum.bootstrap.servers": controller,
                # NODE is for the local cluster's pods: bound to loopback like the others, it
                # is reached through the node network's host side, so that is what it advertises.
                "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{controller},"
                f"NODE://{HOST}:{node_port}",
                "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port},"
                f"NODE://{NODE_HOST_SIDE}:{node_port}",
                "controller.listener.names": "CONTROLLER",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": (
                    "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,NODE:PLAINTEXT"
                ),
                "log.dirs": self.data_dir,
                "num.partitions": 1,
                "offsets.topic.replication.factor": 1,
                "offsets.topic.num.partitions": 10,
                "transaction.state.log.replication.factor": 1,
                "transaction.state.log.min.isr": 1,
                "transaction.state.log.num.partitions": 10,
                "share.coordinator.state.topic.replication.factor": 1,
                "share.coordinator.state.topic.min.isr": 1,
                "group.initial.rebalance.delay.ms": 0,
                "auto.create.topics.enable": "true",
            },
        )
        if (self.data_dir / "meta.properties").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding, not starting with '-'.
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        process.run(
            _java(
                "256m",
                self.conf_dir / "log4j2.properties",
                self.lib,
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id,
                "-c",
                str(self.conf_dir / "server.properties"),
            ),
            log_file=self.log_file,
        )

    def command(self) -> list[str]:
        return _java(
            self.settings.kafka_heap,
            self.conf_dir / "log4j2.properties",
            self.lib,
            "kafka.Kafka",
            str(self.conf_dir / "server.properties"),
        )

    def health(self) -> str | None:
        return api_versions_ok(self.port)

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"


class Connect(Component):
    name = "connect"
    start_timeout = 120.0
    needs = ("kafka", "postgres")

    @property
    def port(self) -> int:
        return self.settings.port_connect

    @property
    def conf_dir(self) -> Path:
        return self.settings.state_dir / "conf" / self.name

    def install(self) -> None:
        self.lib = kafka_lib(self.settings.cache_dir)
        # Connect's plugin.path holds one folder per plugin: the parent of the jar folder.
        self.plugins = install.maven_libs(
            self.settings.cache_dir,
            "debezium",
            ["-DexcludeGroupIds=org.apache.kafka", "-DexcludeArtifactIds=slf4j-api"],
        ).parent

    def prepare(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "log4j2.properties").write_text(LOG4J2)
        _write_properties(
            self.conf_dir / "connect.properties",
            {
                "bootstrap.servers": f"{HOST}:{self.settings.port_kafka}",
                "group.id": "bmt-connect",
                "key.converter": "org.apache.kafka.connect.json.JsonConverter",
                "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                # Consumers read plain JSON change events, without the schema envelope.
                "key.converter.schemas.enable": "false",
                "value.converter.schemas.enable": "false",
                "config.storage.topic": "bmt-connect-configs",
                "offset.storage.topic": "bmt-connect-offsets",
                "status.storage.topic": "bmt-connect-status",
                "config.storage.replication.factor": 1,
                "offset.storage.replication.factor": 1,
                "offset.storage.partitions": 5,
                "status.storage.replication.factor": 1,
                "status.storage.partitions": 1,
                "offset.flush.interval.ms": 1000,
                "listeners": f"http://{HOST}:{self.port}",
                "rest.advertised.host.name": HOST,
                "rest.advertised.port": self.port,
                "plugin.path": self.plugins,
                "plugin.discovery": "hybrid_warn",
            },
        )

    def command(self) -> list[str]:
        return _java(
            self.settings.connect_heap,
            self.conf_dir / "log4j2.properties",
            self.lib,
            "org.apache.kafka.connect.cli.ConnectDistributed",
            str(self.conf_dir / "connect.properties"),
        )

    def health(self) -> str | None:
        try:
            status, body = http_get(self.port, "/connector-plugins")
        except OSError as exc:
            return f"no answer on port {self.port}: {exc.strerror or exc}"
        if status != 200:
            return f"GET /connector-plugins answered {status}"
        if DEBEZIUM_CONNECTOR not in body:
            return "the Debezium PostgreSQL connector is not loaded"
        return None
