"""What really runs while each asset materialises: the oracle the derived code versions are held
against (test_code_versions.py). A trace function on every thread records each project function
that is called while an asset's compute function is on the stack, and each resource setting read
then.

It is independent of `assets/versions.py`: it knows nothing of syntax trees or imports, only which
code objects the interpreter entered and which resource fields were read.
"""

from __future__ import annotations

import sys
import threading
from collections import defaultdict
from pathlib import Path

from dagster import AssetExecutionContext

import selection_assets

PACKAGE_DIR = str(Path(selection_assets.__file__).resolve().parent) + "/"


class AssetCodeTrace:
    """Per asset key (its user string): the (module, qualified name) of every project function
    that ran while it materialised, and the (resource class name, field) of every setting read."""

    def __init__(self, resource_classes: tuple[type, ...]):
        self.functions: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self.settings: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self.resource_classes = resource_classes
        self._current: str | None = None
        self._saved_getattribute: dict[type, object] = {}

    def _trace(self, frame, event, arg):
        """A global trace function: called on entering each Python frame (never on C calls, unlike
        a profile hook); only the compute function's own frame gets a local one, to see it return."""
        code = frame.f_code
        if event != "call" or not code.co_filename.startswith(PACKAGE_DIR):
            return None
        if self._current is None:
            context = frame.f_locals.get("context") if code.co_argcount else None
            if isinstance(context, AssetExecutionContext) and code.co_varnames[0] == "context":
                self._current = context.asset_key.to_user_string()
                self.functions[self._current].add((frame.f_globals.get("__name__", ""), code.co_qualname))
                return self._until_return
            return None
        self.functions[self._current].add((frame.f_globals.get("__name__", ""), code.co_qualname))
        return None

    def _until_return(self, frame, event, arg):
        if event == "return":
            self._current = None
        return self._until_return

    def _recording_getattribute(self, cls: type):
        original = cls.__getattribute__
        fields = set(cls.model_fields)
        trace = self

        def getattribute(instance, name):
            if name in fields and trace._current is not None:
                trace.settings[trace._current].add((cls.__name__, name))
            return original(instance, name)

        return getattribute

    def __enter__(self) -> "AssetCodeTrace":
        for cls in self.resource_classes:
            self._saved_getattribute[cls] = cls.__dict__.get("__getattribute__")
            cls.__getattribute__ = self._recording_getattribute(cls)
        threading.settrace(self._trace)
        sys.settrace(self._trace)
        return self

    def __exit__(self, *exc) -> None:
        sys.settrace(None)
        threading.settrace(None)
        for cls, saved in self._saved_getattribute.items():
            if saved is None:
                del cls.__getattribute__
            else:
                cls.__getattribute__ = saved
