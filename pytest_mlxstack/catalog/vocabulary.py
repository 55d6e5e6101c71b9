"""The closed vocabularies of a catalog: quantizations and known hardware profiles."""

from __future__ import annotations

from dataclasses import dataclass

# Bytes per parameter on disk for MLX weights (group size 64 adds a scale and bias per group).
# Used for the "disk size plausible" check; the keys are the accepted quantization names.
BYTES_PER_PARAM: dict[str, float] = {
    "int2": 0.3125,
    "int3": 0.4375,
    "int4": 0.5625,
    "int5": 0.6875,
    "int6": 0.8125,
    "int8": 1.0625,
    "mxfp4": 0.53,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp32": 4.0,
}
QUANTIZATIONS = frozenset(BYTES_PER_PARAM)


@dataclass(frozen=True)
class HardwareProfile:
    """A machine class benchmark figures are reported for."""

    name: str
    chip: str
    memory_gb: int


def _apple(name: str) -> HardwareProfile:
    """``m4-pro-48gb`` -> Apple M4 Pro with 48 GB of unified memory."""
    *chip, memory = name.split("-")
    label = " ".join([chip[0].upper(), *(part.title() for part in chip[1:])])
    return HardwareProfile(name, f"Apple {label}", int(memory.removesuffix("gb")))


_APPLE_PROFILES = [
    "m1-8gb",
    "m1-16gb",
    "m1-pro-16gb",
    "m1-pro-32gb",
    "m1-max-32gb",
    "m1-max-64gb",
    "m1-ultra-64gb",
    "m1-ultra-128gb",
    "m2-8gb",
    "m2-16gb",
    "m2-24gb",
    "m2-pro-16gb",
    "m2-pro-32gb",
    "m2-max-32gb",
    "m2-max-64gb",
    "m2-max-96gb",
    "m2-ultra-64gb",
    "m2-ultra-192gb",
    "m3-8gb",
    "m3-16gb",
    "m3-24gb",
    "m3-pro-18gb",
    "m3-pro-36gb",
    "m3-max-36gb",
    "m3-max-48gb",
    "m3-max-64gb",
    "m3-max-128gb",
    "m3-ultra-96gb",
    "m3-ultra-256gb",
    "m3-ultra-512gb",
    "m4-16gb",
    "m4-24gb",
    "m4-32gb",
    "m4-pro-24gb",
    "m4-pro-48gb",
    "m4-pro-64gb",
    "m4-max-36gb",
    "m4-max-48gb",
    "m4-max-64gb",
    "m4-max-128gb",
]

KNOWN_PROFILES: dict[str, HardwareProfile] = {
    p.name: p
    for p in [
        *(_apple(name) for name in _APPLE_PROFILES),
        # the CPU build of mlx on Linux, where the fixture models run
        HardwareProfile("linux-x86-cpu", "x86-64 CPU (Linux, mlx[cpu])", 0),
    ]
}
