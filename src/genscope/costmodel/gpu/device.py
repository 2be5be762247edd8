"""What the GPU model needs from a hardware spec beyond the roofline: arch, SM count, host CPU.

These live in the spec's ``extra`` block (``extra.arch``, ``extra.sm_count``,
``extra.host_cpu``), each with a source like every other number of the registry.

``host_cpu`` is the single-thread speed of the spec's typical host CPU relative to the CPU the
host constants were measured on (1.0 = the same). Host costs are divided by it: Python and the
dispatcher run on one core, so their time scales inversely with single-thread speed.
"""

from __future__ import annotations

from dataclasses import dataclass

from genscope.costmodel.hardware import HardwareSpec
from genscope.errors import UserError

ARCHS: tuple[str, ...] = ("sm80", "sm86", "sm89", "sm90", "sm100")


@dataclass(frozen=True)
class Device:
    """The GPU-model view of a spec: datasheet ceilings plus arch, SMs and host speed."""

    spec: HardwareSpec
    arch: str
    sm_count: int
    host_cpu: float

    @property
    def name(self) -> str:
        return self.spec.name


def device_of(spec: HardwareSpec) -> Device:
    """Read the GPU fields of ``spec``; a spec without them (e.g. ``cpu-local``) is bad input."""
    extra = spec.extra or {}
    arch, sms = extra.get("arch"), extra.get("sm_count")
    if arch not in ARCHS or not isinstance(sms, int) or sms <= 0:
        raise UserError(
            f"hardware {spec.name} has no GPU model fields (extra.arch in {', '.join(ARCHS)} "
            "and extra.sm_count); choose an NVIDIA GPU spec"
        )
    return Device(spec, str(arch), int(sms), float(extra.get("host_cpu", 1.0)))
