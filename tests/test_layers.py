"""Layers a newcomer can see: every module has a layer and imports only its own or lower ones.

Low to high (README, "Layout"):

0. foundation: errors, settings, versions, JSON helpers, validation of settings;
1. the store and what reads it: store, cells, the lake (Spark), loader, simulator, summaries, the
   runs registry,
   observational frames, the assignment history;
2. models and checks on cells: the cell-model core and its compiled-model cache, uplift, joint,
   money, g-formula, diagnostics, the sample-ratio check, the design maths, the configuration
   and the report's wording;
3. workflows: an experiment's readout and decision, assignment and planning, observational
   attribution, the store check;
4. jobs and surfaces: refresh, the report, the command line.

Below the top layer, attribution/ never imports experiments/ (the CLI, on top, uses both), and
no two modules import each other, directly or around a loop (imports only for type checkers
aside). A new module fails this test until it is given a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("attribution", "experiments")

LAYERS = {
    0: ["attribution", "attribution.errors", "attribution.settings", "attribution.versions",
        "attribution.jsonready", "attribution.validation", "attribution.checks",
        "attribution.periods", "attribution.estimates", "attribution.looks", "experiments"],
    1: ["attribution.store", "attribution.cells", "attribution.lake", "attribution.load",
        "attribution.synth",
        "attribution.summary", "attribution.runs", "attribution.observational",
        "experiments.history"],
    2: ["attribution.diagnostics", "attribution.compiledcache", "attribution.cellmodel",
        "attribution.uplift", "attribution.joint", "attribution.value", "attribution.gformula",
        "attribution.srm", "attribution.config", "attribution.formatting", "attribution.forest",
        "experiments.design",
        "experiments.design.sizing", "experiments.design.clusters", "experiments.design.timing",
        "experiments.design.value", "experiments.design.rule",
        "experiments.design.sequential"],
    3: ["attribution.readout", "attribution.causal", "attribution.causal.terms",
        "attribution.causal.graph", "attribution.causal.propensity",
        "attribution.causal.estimators", "attribution.causal.aipw", "attribution.causal.strata",
        "attribution.causal.sensitivity",
        "attribution.causal.refuters",
        "attribution.causal.result",
        "attribution.causal.workflow", "attribution.check", "attribution.targeting",
        "attribution.targeting.data", "attribution.targeting.learners",
        "attribution.targeting.evaluate", "attribution.targeting.policy",
        "attribution.targeting.population",
        "attribution.targeting.workflow", "experiments.plan",
        "experiments.assign.rules", "experiments.assign.hashing", "experiments.assign.balance",
        "experiments.assign.record", "experiments.assign.randomize", "experiments.assign.write",
        "experiments.assign", "experiments.decision"],
    4: ["attribution.refresh", "attribution.report", "attribution.report_html", "attribution.cli",
        "attribution.__main__"],
}  # fmt: skip
LAYER_OF = {module: layer for layer, modules in LAYERS.items() for module in modules}
TOP = max(LAYERS)


def _modules() -> dict[str, Path]:
    """Every module of the packages and their subpackages, by dotted name."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``path`` imports anywhere (functions too), type-checking-only aside."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_type_checking(node):
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from attribution import store` names a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {name for name in found if name in modules}


MODULES = _modules()
GRAPH = {name: _imports(path, MODULES) for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    assert sorted(set(MODULES) - set(LAYER_OF)) == []
    assert sorted(set(LAYER_OF) - set(MODULES)) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_own_or_lower_layers(module):
    upward = {dep: LAYER_OF[dep] for dep in GRAPH[module] if LAYER_OF[dep] > LAYER_OF[module]}
    assert upward == {}, f"{module} (layer {LAYER_OF[module]}) imports higher layers: {upward}"


def test_attribution_below_the_top_layer_never_imports_experiments():
    crossing = {
        module: sorted(dep for dep in deps if dep.startswith("experiments"))
        for module, deps in GRAPH.items()
        if module.startswith("attribution") and LAYER_OF[module] < TOP
    }
    assert {m: d for m, d in crossing.items() if d} == {}


def test_no_two_modules_import_each_other_even_around_a_loop():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    loops = []

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(GRAPH[module] - {module}):
            if state.get(dep) == 1:
                loops.append(path[path.index(dep) :] + [dep])
            elif dep not in state:
                walk(dep, [*path, dep])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            walk(module, [module])
    assert loops == []


def test_the_check_sees_imports_inside_functions():
    # refresh imports attribution.causal inside a function: still an edge of the graph
    assert "attribution.causal" in GRAPH["attribution.refresh"]
    # and a subpackage's modules are modules of the map
    assert "attribution.causal.graph" in GRAPH["attribution.causal.workflow"]
    assert "attribution.report_html" in GRAPH["attribution.report"]


def test_the_readme_layout_table_names_every_module_in_its_layer():
    """The README's table is the map a newcomer reads: it must agree with the one tested here."""
    text = (ROOT / "README.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0][:1].isdigit() and cells[0][0] in "01234":
            rows[int(cells[0][0])] = cells[1]
    assert sorted(rows) == sorted(LAYERS), rows
    missing = {}
    for module, layer in LAYER_OF.items():
        if module in PACKAGES or module.endswith("__main__"):
            continue
        last = module.rsplit(".", 1)[-1]
        named = (f"`{last}`", f"`{module.removeprefix('attribution.')}`")
        if not any(n in rows[layer] for n in named):
            missing[module] = layer
    assert missing == {}, f"modules not named in their layer's README row: {missing}"
