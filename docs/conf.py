"""Sphinx configuration for the polygon-streaming documentation.

Built by ``make docs`` with warnings as errors and every cross-reference
checked (``-W -n``). Besides Sphinx's bundled extensions it uses the furo theme
and sphinx-copybutton (the ``docs`` and ``dev`` extras); there is no network at
build time, so there is no intersphinx.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# The package is installed (editable) by ``make install``; this also lets a
# plain ``sphinx-build docs ...`` from a checkout find it.
sys.path.insert(0, str(ROOT))

import polygon  # noqa: E402

# -- The reference page's method targets -----------------------------------------------
#
# Every ``.. automethod::`` target of the reference page of the async client must
# be documented here under exactly the same name. The list is kept in
# reference_targets.txt (one target a line) so the check works in any clone; when
# the reference page itself sits beside the repository (../../shared/reference/),
# it is read too, so a target added there cannot be missed.

REFERENCE_PAGE = ROOT.parent / "shared" / "reference" / "async-streaming-page.txt"
TARGETS_FILE = DOCS / "reference_targets.txt"
AUTOMETHOD = re.compile(r"\.\.\s+automethod::\s+(\S+)")


class ReferenceTargetsError(Exception):
    """The docs do not cover every method target of the reference page."""


def _listed_targets() -> list[str]:
    lines = TARGETS_FILE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _page_targets() -> list[str]:
    if not REFERENCE_PAGE.is_file():
        return []
    return AUTOMETHOD.findall(REFERENCE_PAGE.read_text(encoding="utf-8"))


def _documented_targets() -> set[str]:
    found: set[str] = set()
    for page in DOCS.glob("*.rst"):
        found.update(AUTOMETHOD.findall(page.read_text(encoding="utf-8")))
    return found


def _importable(target: str) -> bool:
    """Whether ``target`` (``package.module.Class.method``) names a real attribute."""
    parts = target.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for name in parts[split:]:
                obj = getattr(obj, name)
        except AttributeError:
            return False
        return True
    return False


def check_reference_targets() -> None:
    listed = _listed_targets()
    problems: list[str] = []
    unlisted = [t for t in _page_targets() if t not in listed]
    if unlisted:
        problems += [f"on {REFERENCE_PAGE} but not in {TARGETS_FILE.name}:", *unlisted]
    wanted = list(dict.fromkeys(listed + unlisted))
    documented = _documented_targets()
    missing = [t for t in wanted if t not in documented]
    if missing:
        problems += ["no '.. automethod::' in docs/*.rst for:", *missing]
    broken = [t for t in wanted if not _importable(t)]
    if broken:
        problems += ["not found in the code:", *broken]
    if problems:
        raise ReferenceTargetsError("\n    ".join(["reference page targets:", *problems]))


check_reference_targets()

# -- Project -------------------------------------------------------------------------------

project = "polygon-streaming"
author = "the polygon-streaming authors"
copyright = "2025, the polygon-streaming authors"
release = polygon.__version__
version = ".".join(release.split(".")[:2])

# -- General -------------------------------------------------------------------------------

extensions = ["sphinx.ext.autodoc", "sphinx_copybutton"]
exclude_patterns = ["_build"]
default_role = "code"

# A signature longer than this is written one parameter per line, so the
# clients' constructors read as a list rather than a wrapped paragraph.
maximum_signature_line_length = 88

# The page's table of contents lists methods by their own names
# (``handle_messages()``), which fit its narrow column, not ``Class.method()``.
toc_object_entries_show_parents = "hide"

# The copy button leaves prompts and output out of what it copies.
copybutton_prompt_text = r"\$ |>>> |\.\.\. "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = False

# -- autodoc -------------------------------------------------------------------------------

autodoc_member_order = "bysource"
autoclass_content = "both"
autodoc_typehints = "signature"
autodoc_inherit_docstrings = True

# Signatures show these aliases by name, linked to their entries in api.rst,
# instead of spelling out the unions and callables they stand for.
autodoc_type_aliases = {
    "Symbols": "polygon.streaming._protocol.Symbols",
    "Event": "polygon.streaming._dispatch.Event",
    "Handler": "polygon.streaming._dispatch.Handler",
    "SyncHandler": "polygon.streaming._dispatch.SyncHandler",
    "OverflowPolicy": "polygon.streaming._buffer.OverflowPolicy",
    "OnMessage": "polygon.streaming.streaming.OnMessage",
    "OnError": "polygon.streaming.streaming.OnError",
    "OnClose": "polygon.streaming.streaming.OnClose",
}
python_use_unqualified_type_names = True

# -- Cross-references that cannot resolve ------------------------------------------------
#
# Without intersphinx, names from the standard library and typing have nowhere to
# point. Each entry is one exact name, so a typo of our own still fails the build.

nitpick_ignore = [
    ("py:class", "collections.abc.AsyncIterator"),
    ("py:class", "collections.abc.Awaitable"),
    ("py:class", "collections.abc.Callable"),
    ("py:class", "collections.abc.Iterable"),
    ("py:class", "collections.abc.Iterator"),
    ("py:class", "collections.abc.Mapping"),
    ("py:class", "collections.abc.Sequence"),
    ("py:class", "pathlib.Path"),
    # The TypeVar of is_event() and EventHandler.
    ("py:class", "polygon.streaming.types.E"),
    # The TypeVar of SimulatorThread.call's overloads.
    ("py:class", "polygon.streaming.simulator._thread.T"),
    # Session.connection: the simulator's side of a websockets connection.
    ("py:class", "websockets.asyncio.server.ServerConnection"),
]

# -- Hooks -------------------------------------------------------------------------------

_FORWARD_REF = re.compile(r"TypeAliasForwardRef\('([^']+)'\)")


def _unwrap_type_aliases(
    app: object,
    what: str,
    name: str,
    obj: object,
    options: object,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None]:
    """Show an alias inside a union or generic (``Handler | None``) by its name.

    Sphinx renders an ``autodoc_type_aliases`` entry correctly on its own, but
    inside ``X | None`` or ``list[X]`` it prints the repr of its internal
    placeholder, ``TypeAliasForwardRef('...')``; this puts the name back.
    """
    if signature:
        signature = _FORWARD_REF.sub(r"\1", signature)
    if return_annotation:
        return_annotation = _FORWARD_REF.sub(r"\1", return_annotation)
    return signature, return_annotation


def setup(app: Any) -> None:
    app.connect("autodoc-process-signature", _unwrap_type_aliases)


# -- HTML ----------------------------------------------------------------------------------

# furo: a maintained theme that uses the whole width of a desktop screen for
# code and collapses its sidebar into a menu on a phone; light and dark modes.
html_theme = "furo"
html_title = f"polygon-streaming {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
pygments_style = "friendly"
pygments_dark_style = "monokai"
