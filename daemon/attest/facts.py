"""Self-reported facts about this machine: CPU, memory, operating system.

These are *claims*, not attestation: any node can write anything here, and a verifier cannot
check them. They are labelled "self-reported" wherever they appear, and the scheduler may use
them to place work but never to trust a result. Read through ``FsProbe`` so a test can point
them at a fake root.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any

from daemon.attest.probe import FsProbe
from daemon.attest.wire import as_map, get_int, get_str
from protocol.errors import MalformedMessage

LABEL = "self-reported"
MAX_FACT = 200


@dataclass(frozen=True, slots=True)
class SelfReportedFacts:
    cpu_model: str
    cpu_count: int
    memory_bytes: int
    os: str
    kernel: str
    arch: str

    def to_wire(self) -> dict[str, Any]:
        return {"label": LABEL, "cpu_model": self.cpu_model, "cpu_count": self.cpu_count,
                "memory_bytes": self.memory_bytes, "os": self.os, "kernel": self.kernel,
                "arch": self.arch}

    @classmethod
    def from_wire(cls, obj: Any) -> "SelfReportedFacts":
        w = "self-reported facts"
        m = as_map(obj, w, {"label", "cpu_model", "cpu_count", "memory_bytes", "os", "kernel",
                            "arch"})
        if get_str(m, "label", w, 32) != LABEL:
            raise MalformedMessage(f"{w}: must be labelled {LABEL!r}")
        return cls(get_str(m, "cpu_model", w, MAX_FACT), get_int(m, "cpu_count", w, 0, 1 << 20),
                   get_int(m, "memory_bytes", w, 0, 1 << 62), get_str(m, "os", w, MAX_FACT),
                   get_str(m, "kernel", w, MAX_FACT), get_str(m, "arch", w, 32))

    def lines(self) -> list[str]:
        gib = self.memory_bytes / (1 << 30)
        return [f"cpu:    {self.cpu_model} ({self.cpu_count} logical CPUs)",
                f"memory: {gib:.1f} GiB", f"os:     {self.os}",
                f"kernel: {self.kernel} ({self.arch})"]


def _clip(text: str) -> str:
    return text.strip()[:MAX_FACT]


def gather_facts(probe: FsProbe) -> SelfReportedFacts:
    cpuinfo = probe.read_text("/proc/cpuinfo") or ""
    model, count = "unknown", 0
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "processor":
            count += 1
        elif key in ("model name", "Model", "cpu model") and model == "unknown":
            model = _clip(value)
    memory = 0
    for line in (probe.read_text("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                memory = int(parts[1]) * 1024
    os_name = "unknown"
    for line in (probe.read_text("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = _clip(line.partition("=")[2].strip().strip('"'))
    kernel = _clip(probe.read_text("/proc/sys/kernel/osrelease") or "unknown")
    return SelfReportedFacts(model, count, memory, os_name, kernel, _clip(platform.machine()))
