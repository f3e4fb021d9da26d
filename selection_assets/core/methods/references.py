"""What the method modules say of themselves, gathered: the method table (every registered method
with its one line, its paper and its provenance: the public code it follows, its known departures
and its selection cost; `selection-assets results --section methods` writes it into docs/methods.md,
so the table cannot drift from the code), the papers' claims against random (`CLAIMS`) and the
methods each paper reports its method beating (`OUTPERFORMS`), which the comparison tests directly.
Each is declared in the method's own module."""

from __future__ import annotations

from selection_assets.core.methods import Provenance, method_modules


def _gathered(attribute: str) -> dict:
    """The per-method dicts every method module declares under `attribute`, merged by method name."""
    return {name: value for module in method_modules() for name, value in getattr(module, attribute, {}).items()}


def provenance() -> dict[str, Provenance]:
    """Every method module's `PROVENANCE`, by method name."""
    return _gathered("PROVENANCE")


def paper_claims() -> dict[str, str]:
    """Every method module's `CLAIMS`: what its paper reports for a method against random."""
    return _gathered("CLAIMS")


def head_to_head_rivals() -> dict[str, tuple[str, ...]]:
    """Every method module's `OUTPERFORMS`: per method, those its paper reports it beating."""
    return {name: tuple(rivals) for name, rivals in _gathered("OUTPERFORMS").items()}


def method_table(registry: dict) -> str:
    """The method table: name, what it does, paper, public code followed, known departures,
    selection cost. Raises KeyError naming a method without provenance."""
    origins = provenance()
    missing = [name for name in registry if name not in origins]
    if missing:
        raise KeyError(f"no provenance for {', '.join(missing)}: declare it in its module's PROVENANCE")
    lines = ["| method | one line | paper | public code followed | known departures | selection cost |",
             "|---|---|---|---|---|---|"]
    for name, spec in registry.items():
        origin = origins[name]
        lines.append(f"| `{name}` | {spec.summary} | {spec.reference} | {origin.code} | {origin.departures} | "
                     f"{origin.cost} |")
    return "\n".join(lines)
