"""The workload suite by name."""

from __future__ import annotations

from genscope.errors import choices_error
from genscope.workloads.base import Workload
from genscope.workloads.chameleon import ChameleonI2T, ChameleonT2I
from genscope.workloads.dit import SD3, Flux, PixArt
from genscope.workloads.hstu import HSTU
from genscope.workloads.imagen import Imagen
from genscope.workloads.llama import Llama
from genscope.workloads.make_a_video import MakeAVideo
from genscope.workloads.muse import Muse
from genscope.workloads.parti import Parti
from genscope.workloads.phenaki import Phenaki
from genscope.workloads.sd15 import SD15
from genscope.workloads.sdxl import SDXL
from genscope.workloads.seamless import Seamless
from genscope.workloads.svd import SVD
from genscope.workloads.video_dit import CogVideoX, Wan

_WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        SD15(),
        Muse(),
        Parti(),
        Phenaki(),
        ChameleonT2I(),
        ChameleonI2T(),
        Llama(),
        Seamless(),
        HSTU(),
        SDXL(),
        Imagen(),
        MakeAVideo(),
        SVD(),
        PixArt(),
        SD3(),
        Flux(),
        CogVideoX(),
        Wan(),
    )
}


def workload_names() -> list[str]:
    return list(_WORKLOADS)


def get_workload(name: str) -> Workload:
    if name not in _WORKLOADS:
        raise choices_error("workload", name, list(_WORKLOADS))
    return _WORKLOADS[name]


def all_workloads() -> list[Workload]:
    return list(_WORKLOADS.values())
