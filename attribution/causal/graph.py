"""The causal graph of one question and DoWhy's identification of its effect."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import pandas as pd

from attribution.causal.terms import TREATED, Quiet, outcome_column
from attribution.errors import InputError
from attribution.observational import (
    ObservationalData,
)


# --------------------------------------------------------------------------------------------
# Graph and identification
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CausalGraph:
    """The declared causal graph of one question.

    Attributes
    ----------
    treatment, outcome : str
        Column names (``treated`` and one of ``retained``, ``revenue``, ``cost_to_serve``).
    confounders, instruments, unobserved : tuple of str
    descendants : tuple of str
        Declared consequences of the treatment (measured after it): drawn treatment -> d ->
        outcome, never adjusted for.
    """

    treatment: str
    outcome: str
    confounders: tuple[str, ...]
    instruments: tuple[str, ...] = ()
    unobserved: tuple[str, ...] = ()
    descendants: tuple[str, ...] = ()

    def to_networkx(self) -> nx.DiGraph:
        """The graph as a networkx DiGraph (unobserved nodes carry ``observed="no"``)."""
        g = nx.DiGraph()
        g.add_node(self.treatment)
        g.add_node(self.outcome)
        for c in self.confounders:
            g.add_edge(c, self.treatment)
            g.add_edge(c, self.outcome)
        for z in self.instruments:
            g.add_edge(z, self.treatment)
        for u in self.unobserved:
            g.add_node(u, observed="no")
            g.add_edge(u, self.treatment)
            g.add_edge(u, self.outcome)
        for d in self.descendants:  # not in the data: DoWhy treats the node as unobserved
            g.add_node(d, observed="no")
            g.add_edge(self.treatment, d)
            g.add_edge(d, self.outcome)
        g.add_edge(self.treatment, self.outcome)
        return g

    def edges(self) -> list[tuple[str, str]]:
        """Every edge, causes first."""
        return list(self.to_networkx().edges)

    def describe(self) -> str:
        """A text picture of the graph."""
        lines = [f"  {self.treatment} --> {self.outcome}"]
        if self.confounders:
            lines.append(
                f"  [{', '.join(self.confounders)}] --> {self.treatment} and {self.outcome}"
            )
        if self.instruments:
            lines.append(f"  [{', '.join(self.instruments)}] --> {self.treatment} (instruments)")
        if self.unobserved:
            lines.append(
                f"  ({', '.join(self.unobserved)}, unobserved) --> {self.treatment} and "
                f"{self.outcome}"
            )
        if self.descendants:
            lines.append(
                f"  {self.treatment} --> [{', '.join(self.descendants)}] --> {self.outcome} "
                "(descendants of the treatment: not adjusted for)"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready form: nodes by role and the edge list."""
        return {
            "treatment": self.treatment,
            "outcome": self.outcome,
            "confounders": list(self.confounders),
            "instruments": list(self.instruments),
            "unobserved": list(self.unobserved),
            "descendants": list(self.descendants),
            "edges": [list(e) for e in self.edges()],
        }


def causal_graph(
    data: ObservationalData,
    outcome: str,
    *,
    instruments: Sequence[str] = (),
    unobserved: Sequence[str] = (),
    descendants: Sequence[str] = (),
) -> CausalGraph:
    """The graph of one question: treatment, outcome, the data's confounders and declared extras.

    Parameters
    ----------
    data : ObservationalData
    outcome : {"retention", "revenue", "cost_to_serve"}
    instruments : sequence of str
        Columns of ``data.frame`` that cause the treatment only.
    unobserved : sequence of str
        Names of unobserved common causes (not columns).
    descendants : sequence of str
        Variables the treatment causes (measured after it: a later CSAT, cases opened after
        the outreach). Drawn between treatment and outcome, never adjusted for.

    Raises
    ------
    InputError
        An instrument that is not a column or is also a confounder; an unobserved cause that is
        a column; a confounder declared a descendant of the treatment (adjusting for what the
        treatment caused removes part of its effect, or opens a collider path).

    Examples
    --------
    >>> import pandas as pd
    >>> from datetime import date
    >>> frame = pd.DataFrame({"treated": [0, 1], "tier": ["a", "b"], "retained": [1, 1]})
    >>> d = ObservationalData(frame, "x", date(2025, 1, 1), 1, ["tier"], [], ["tier"])
    >>> causal_graph(d, "retention").edges()
    [('treated', 'retained'), ('tier', 'treated'), ('tier', 'retained')]
    """
    column = outcome_column(outcome)
    for z in instruments:
        if z not in data.frame.columns:
            raise InputError(f"instrument {z!r} is not a column of the data")
        if z in data.confounders:
            raise InputError(f"{z!r} is declared both a confounder and an instrument")
    for u in unobserved:
        if not isinstance(u, str) or not u or u in data.frame.columns:
            raise InputError(
                f"unobserved common cause {u!r} must be a new name, not a column of the data"
            )
    after = [c for c in data.confounders if c in set(descendants)]
    if after:
        raise InputError(
            f"confounder(s) {after} are declared descendants of the treatment "
            "([causal] descendants: measured after it or caused by it); adjusting for them "
            "would remove part of the effect asked about or open a collider path: leave them "
            "out of the confounders"
        )
    for d in descendants:
        if not isinstance(d, str) or not d or d in (TREATED, column):
            raise InputError(f"descendant {d!r} must name a variable, not the treatment or outcome")
    return CausalGraph(
        treatment=TREATED,
        outcome=column,
        confounders=tuple(data.confounders),
        instruments=tuple(instruments),
        unobserved=tuple(unobserved),
        descendants=tuple(dict.fromkeys(descendants)),
    )


def graph_png(graph: CausalGraph, path: str | Path) -> Path:
    """Draw the graph into a PNG file (matplotlib, no display needed).

    Treatment and outcome are dark, confounders light, instruments green, unobserved causes
    dashed grey, descendants of the treatment orange. Returns the path written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    g = graph.to_networkx()
    pos: dict[str, tuple[float, float]] = {graph.treatment: (0.0, 0.0), graph.outcome: (2.0, 0.0)}
    top = list(graph.confounders)
    for i, c in enumerate(top):
        pos[c] = (2.0 * (i + 0.5) / max(len(top), 1), 1.0 + 0.25 * (i % 2))
    for i, z in enumerate(graph.instruments):
        pos[z] = (-1.0, -0.5 - 0.4 * i)
    for i, u in enumerate(graph.unobserved):
        pos[u] = (1.0 + 0.5 * i, -1.0)
    for i, d in enumerate(graph.descendants):
        pos[d] = (1.0, -0.5 - 0.4 * i)
    colors = []
    for node in g.nodes:
        if node in (graph.treatment, graph.outcome):
            colors.append("#1f3b73")
        elif node in graph.instruments:
            colors.append("#2e8b57")
        elif node in graph.unobserved:
            colors.append("#bbbbbb")
        elif node in graph.descendants:
            colors.append("#f4a582")
        else:
            colors.append("#9ecae1")
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(g.nodes)), 4.5))
    nx.draw_networkx(
        g,
        pos=pos,
        ax=ax,
        node_color=colors,
        font_size=8,
        node_size=900,
        arrowsize=12,
        font_color="black",
    )
    ax.set_title(f"{graph.treatment} -> {graph.outcome}")
    ax.axis("off")
    out = Path(path)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


@dataclass(frozen=True)
class Identification:
    """DoWhy's identification of the effect.

    Attributes
    ----------
    identifiable : bool
        True when the backdoor criterion identifies the effect.
    adjustment_set : list of str
        The backdoor variables DoWhy adjusts for.
    instruments : list of str
        Instruments DoWhy found (reported; the estimators here use the backdoor set).
    estimand : str
        DoWhy's printed estimand.
    """

    identifiable: bool
    adjustment_set: list[str]
    instruments: list[str]
    estimand: str = field(repr=False, default="")

    def describe(self) -> str:
        """One sentence on what was identified."""
        if not self.identifiable:
            return (
                "Not identifiable: the graph declares unobserved common causes of treatment and "
                "outcome, so no adjustment set blocks every backdoor path; nothing is estimated."
            )
        return (
            "Identified by the backdoor criterion, adjusting for "
            f"{len(self.adjustment_set)} confounder(s): {', '.join(self.adjustment_set)}."
        )

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "identifiable": self.identifiable,
            "adjustment_set": list(self.adjustment_set),
            "instruments": list(self.instruments),
            "text": self.describe(),
        }


def identify(data: ObservationalData, graph: CausalGraph) -> Identification:
    """Identify the effect of the graph's treatment on its outcome with DoWhy (backdoor).

    Returns an :class:`Identification`; ``identifiable`` is False when no backdoor set exists
    (declared unobserved common causes).
    """
    model = causal_model(data.frame, graph)
    with Quiet():
        estimand = model.identify_effect(proceed_when_unidentifiable=False)
    backdoor = estimand.get_backdoor_variables()
    ok = estimand.estimands.get("backdoor") is not None and not graph.unobserved
    return Identification(
        identifiable=bool(ok),
        adjustment_set=sorted(backdoor) if ok else [],
        instruments=sorted(estimand.get_instrumental_variables() or []),
        estimand=str(estimand),
    )


def causal_model(frame: pd.DataFrame, graph: CausalGraph):
    from dowhy import CausalModel

    cols = [graph.treatment, graph.outcome, *graph.confounders, *graph.instruments]
    with Quiet():
        return CausalModel(
            data=frame[cols],
            treatment=graph.treatment,
            outcome=graph.outcome,
            graph=graph.to_networkx(),
        )
