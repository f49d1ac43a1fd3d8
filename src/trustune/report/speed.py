"""The Speed section of every result: latency and throughput, whatever the task."""

from __future__ import annotations

from markupsafe import Markup

from trustune.report.sections import SectionInput, Slot, register_section
from trustune.report.templating import macro
from trustune.values import mapping as as_mapping

__all__: list[str] = []


def _speed(given: SectionInput) -> Markup:
    return macro("_speed.html.j2", "speed")(as_mapping(given.result.get("speed")) or None)


register_section("speed", title="Speed", order=90, builder=_speed, slot=Slot.RESULT)
