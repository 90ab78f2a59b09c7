"""Proof, from inside the serving process, that nothing pickle-capable ran in it.

Learned routers are ONNX graphs; the serving path never needs pickle. An audit hook
(:func:`sys.addaudithook`, installed when ``serve`` starts, cannot be removed) records imports of
pickle-capable loaders (joblib, scikit-learn, skops, torch, cloudpickle, dill) and every
``pickle.find_class`` event (unpickling an object resolves its class: the step that runs
code). Exposed as metrics, so an operator, or a test, can check a live process:
``routeiq_unsafe_loaders_loaded`` (such modules in ``sys.modules``, whenever they came) and
``routeiq_unpickled_classes_total``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["UNSAFE_LOADERS", "ImportAudit"]

log = logging.getLogger(__name__)

UNSAFE_LOADERS = frozenset({"joblib", "sklearn", "skops", "torch", "cloudpickle", "dill"})


class ImportAudit:
    """The audit hook and what it saw; one per process (hooks cannot be removed)."""

    _installed: ImportAudit | None = None

    def __init__(self) -> None:
        self.unpickled: list[str] = []
        self.imported: list[str] = []

    @classmethod
    def install(cls) -> ImportAudit:
        if cls._installed is None:
            audit = cls()
            sys.addaudithook(audit._hook)
            cls._installed = audit
        return cls._installed

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "import":
            top = str(args[0]).partition(".")[0]
            if top in UNSAFE_LOADERS and len(self.imported) < 100:
                self.imported.append(str(args[0]))
                log.error("a pickle-capable loader was imported: %s", args[0])
        elif event == "pickle.find_class" and len(self.unpickled) < 100:
            self.unpickled.append(f"{args[0]}.{args[1]}")

    @classmethod
    def current(cls) -> ImportAudit | None:
        return cls._installed

    @staticmethod
    def unsafe_loaded() -> list[str]:
        return sorted(m for m in sys.modules if m.partition(".")[0] in UNSAFE_LOADERS)
