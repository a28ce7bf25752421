"""The JVM side of the erasable keys, for the tests: clients/jvm built by Maven, and Java tools run to their end.

The jar is built from the work tree in every test session (its JUnit tests
run too), so a test never runs against a stale jar or a jar from elsewhere;
when Maven fails, the test that needs the jar fails with Maven's output.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from stategate.app.broker import KAFKA_VERSION

REPO_ROOT = Path(__file__).resolve().parent.parent
JVM_POM = REPO_ROOT / "clients" / "jvm" / "pom.xml"
JAR = JVM_POM.parent / "target" / "stategate-erasable-keys.jar"
BUILD_TIMEOUT_SECONDS = 240.0  # a fresh ~/.m2 first downloads Maven's plugins, kafka-clients and JUnit
TOOL_TIMEOUT_SECONDS = 60.0
JVM_OPTIONS = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]  # short-lived tools: start fast, stay small


def build_jar() -> Path:
    """`mvn package` of clients/jvm against the broker's Kafka version; returns the jar."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise AssertionError("Maven (mvn) is needed to build clients/jvm")
    command = [mvn, "-q", "-B", "-f", str(JVM_POM), f"-Dkafka.version={KAFKA_VERSION}", "package"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS)
    if result.returncode != 0:
        output = f"{result.stdout}\n{result.stderr}"
        raise AssertionError(f"mvn package of clients/jvm failed ({result.returncode}):\n{output}")
    if not JAR.is_file():
        raise AssertionError(f"mvn package did not make {JAR}")
    return JAR


def run_java(
    classpath: Sequence[str | Path], main: str, *args: str, stdin: bytes = b"", timeout: float = TOOL_TIMEOUT_SECONDS
) -> bytes:
    """Run a Java main class to its end; returns its standard output, raises with its error output if it fails.

    subprocess.run kills the JVM when `timeout` passes or the test is interrupted,
    so no Java process outlives the test that started it.
    """
    java = shutil.which("java")
    if java is None:
        raise AssertionError("Java 17 or newer is needed")
    command = [java, *JVM_OPTIONS, "-cp", ":".join(str(entry) for entry in classpath), main, *args]
    result = subprocess.run(command, input=stdin, capture_output=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{main} exited with {result.returncode}:\n{result.stderr.decode(errors='replace')}")
    return result.stdout
