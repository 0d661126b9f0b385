"""The layering, checked from the source: each package imports only from the layers below
it, no module imports itself round a cycle, paho stays in the transport and Docker in the
integration tier."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOMES = {"clocksync": REPO / "clocksync", "clocksync.master": REPO / "master",
         "clocksync.nodes": REPO / "nodes"}  # fmt: skip
"""Where each installed package's files live (pyproject.toml's package-dir)."""

MAY_IMPORT: dict[str, set[str]] = {
    "core": set(),
    "protocol": set(),
    "transport": {"protocol"},
    "roles": {"core", "protocol"},
    "master": {"core", "protocol", "roles", "nodes"},  # a standby master follows as a node
    "nodes": {"core", "protocol", "roles"},
    "driver": {"core", "protocol", "transport", "roles", "master", "nodes"},
    "sim": {"core", "protocol", "roles", "master", "nodes"},
    "testing": {"core", "protocol", "transport", "roles", "master", "nodes", "driver", "sim"},
    "app": {
        "core", "protocol", "transport", "roles", "master", "nodes", "driver", "sim", "testing",
    },
    "embed": {"core", "protocol", "transport", "roles", "nodes", "driver", "app"},
    "__main__": {"app"},
}  # fmt: skip
"""Which layer may import which: core (clock, estimation, selection, bounds), protocol
(messages, wire format, topics), then the transport (paho) beside the roles (which never
touch I/O), the driver and the simulator that run roles, the testing helpers (whose real
links with injected delay draw from the simulator's paths), and the applications on top:
the command line and the embedding API (clocksync.embed)."""


def modules() -> dict[str, Path]:
    """Every clocksync module by its installed name."""
    found = {}
    for package, home in HOMES.items():
        for path in home.rglob("*.py"):
            parts = [*path.relative_to(home).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def layer_of(module: str) -> str | None:
    """A module's layer: the package below clocksync it is in (`python -m clocksync` is a
    layer of its own, the top); None for clocksync itself."""
    parts = module.split(".")
    if parts == ["clocksync", "__main__"]:
        return "__main__"
    return parts[1] if len(parts) >= 2 and parts[0] == "clocksync" else None


def internal_imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    return {name for name in imports_of(path) if name in known and name != module}


def test_every_module_belongs_to_a_layer() -> None:
    for module in modules():
        if module != "clocksync":
            assert layer_of(module) in MAY_IMPORT, module


@pytest.mark.parametrize("module", sorted(modules()))
def test_a_module_imports_only_from_layers_below(module: str) -> None:
    known = modules()
    own = layer_of(module)
    for name in internal_imports(module, known[module], known):
        other = layer_of(name)
        if other is None or other == own:
            continue
        assert own is not None, f"{module} (the top-level package) imports {name}"
        assert other in MAY_IMPORT[own], f"{module} ({own}) imports {name} ({other})"


def test_there_are_no_import_cycles() -> None:
    known = modules()
    graph = {module: internal_imports(module, path, known) for module, path in known.items()}
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            cycle = " -> ".join([*trail[trail.index(module) :], module])
            raise AssertionError(f"import cycle: {cycle}")
        if module in done:
            return
        for name in sorted(graph[module]):
            visit(name, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_paho_is_imported_by_the_transport_alone() -> None:
    for module, path in modules().items():
        if any(name.split(".")[0] == "paho" for name in imports_of(path)):
            assert layer_of(module) == "transport", module


def test_docker_is_imported_by_the_integration_tier_alone() -> None:
    integration = REPO / "tests" / "integration"
    patterns = ("clocksync/**/*.py", "master/*.py", "nodes/*.py", "tests/**/*.py", "bench/*.py")
    sources = [path for pattern in patterns for path in REPO.glob(pattern)]
    for path in sources:
        roots = {name.split(".")[0] for name in imports_of(path)}
        if roots & {"docker", "testcontainers"}:
            assert path.is_relative_to(integration), path
