"""The import rules of the house, held by tests.

1. No import cycles among our modules, nor between subpackages (``daemon.jobs`` and
   ``daemon.committees`` importing each other is one concern split in two): every ``import``
   counts, at module level or inside a function or ``if TYPE_CHECKING`` (not a process entry
   point's ``if __name__ == "__main__"``), and importing ``a.b.c`` also runs ``a/__init__`` and
   ``a/b/__init__`` (which is how a pure module ends up dragging in I/O).
2. The pure packages import without trio, libp2p or cryptography (a subprocess where importing
   them fails), and ``novacron verify`` checks a real certificate against a real genesis there.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("protocol", "crdt", "consensus", "daemon", "testnet")
PURE = ("protocol", "crdt", "consensus", "daemon.ledger", "daemon.sched", "daemon.fl",
        "daemon.links")
BLOCKED = ("trio", "libp2p", "cryptography")
PURE_LEAVES = ("daemon.genesis", "daemon.errors")
"""Modules of daemon/ outside the pure packages that they may import: pure themselves."""


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _walk(tree: ast.AST) -> list[ast.AST]:
    """Every node, except under ``if __name__ == "__main__":`` (a process entry point's imports
    run only when it is the program, never when it is imported)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare) \
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__":
            todo += node.orelse
            continue
        out.append(node)
        todo += ast.iter_child_nodes(node)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules importing it runs (ours only)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        targets: set[str] = set()
        for node in _walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                    anchor = anchor[:len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        edges: set[str] = set()
        mine = set(_ancestors(name)) | ({name} if is_pkg else set())
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if not t or t == name:
                continue
            edges.add(t)
            edges |= {a for a in _ancestors(t) if a not in mine and a in modules}
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    graph = import_graph()
    # the implicit edge: importing daemon.ledger.state runs daemon/__init__ and daemon/ledger/__init__
    assert "daemon.jobs.spec" in graph["daemon.jobs.service"]
    assert {"daemon.ledger", "daemon.ledger.state"} <= graph["daemon.ledger.shard"] | {"daemon.ledger"}


def test_pure_packages_never_name_io_libraries() -> None:
    graph_modules = _modules()
    bad = []
    for name, path in graph_modules.items():
        if not any(name == p or name.startswith(p + ".") for p in PURE):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{name}: {n}" for n in names if n.split(".")[0] in BLOCKED + ("daemon",)
                    and not any(n == p or n.startswith(p + ".") for p in PURE + PURE_LEAVES)]
    assert not bad, bad


_BLOCKER = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"blocked for this test: {{name}}")
        return None
sys.meta_path.insert(0, Block())
sys.path.insert(0, {str(ROOT)!r})
"""


def _run_blocked(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _BLOCKER + textwrap.dedent(code), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_the_blocker_blocks() -> None:
    done = _run_blocked("import trio")
    assert done.returncode != 0 and "blocked for this test: trio" in done.stderr


def test_pure_packages_import_without_trio_libp2p_or_cryptography() -> None:
    names = sorted(n for n in _modules() if any(n == p or n.startswith(p + ".") for p in PURE))
    done = _run_blocked("""
        import importlib, sys
        for name in sys.argv[1:]:
            importlib.import_module(name)
        print("imported", len(sys.argv) - 1)
    """, *names)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"imported {len(names)}"


def test_verify_runs_offline_with_only_the_pure_packages(tmp_path: Path) -> None:
    """A real certificate, signed by the genesis' shard committee, verified by the real CLI."""
    from daemon.genesis import write_testnet_genesis
    from daemon.ledger.certificate import ResultCertificate
    from protocol.identity import NodeIdentity
    from protocol.messages.tasks import TaskStatus
    import dataclasses
    import hashlib
    import json
    import random

    ids = [NodeIdentity(random.Random(i).randbytes(32)) for i in range(4)]
    genesis = write_testnet_genesis("rules-net", ids, tmp_path / "genesis.toml",
                                    {"difficulty": 2})
    committee = genesis.epoch0().committees[0]
    by_key = {i.public_key: i for i in ids}
    output = b"3.14159\n"
    cert = ResultCertificate("rules-net", 0, 0, 7, b"j" * 32, 0, int(TaskStatus.OK), 0,
                             hashlib.sha256(output).digest(), len(output), committee, ())
    sigs = tuple((k, by_key[pk].sign(cert.statement())) for k, pk in enumerate(committee[:3]))
    cert = dataclasses.replace(cert, signatures=sigs)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "0.out").write_bytes(output)
    (tmp_path / "certificates.json").write_text(json.dumps([cert.to_json()]))
    done = _run_blocked("""
        import sys
        from daemon.cli import main
        code = main(["verify", sys.argv[1], "--genesis", sys.argv[2]])
        blocked = sorted(m for m in sys.modules if m.split(".")[0] in ("trio", "libp2p", "cryptography"))
        print("exit", code, "loaded", blocked)
    """, str(tmp_path), str(tmp_path / "genesis.toml"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 of 1 results verified" in done.stdout
    assert "exit 0 loaded []" in done.stdout, done.stdout


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph between subpackages (``daemon.jobs``, ``protocol.messages``, ...): two
    packages that import each other are one concern split in two, even without a module cycle."""
    def unit(name: str) -> str:
        return ".".join(name.split(".")[:2])

    out: dict[str, set[str]] = {}
    for name, targets in graph.items():
        out.setdefault(unit(name), set()).update(unit(t) for t in targets if unit(t) != unit(name))
    return out


def test_no_cycles_between_subpackages() -> None:
    found = cycles(package_graph(import_graph()))
    assert not found, "subpackages importing each other:\n" + "\n".join(" <-> ".join(c) for c in found)


PLANNERS = ("daemon.jobs.planner", "daemon.jobs.tally", "daemon.softstate.plan",
            "daemon.softstate.partners")
"""The decisions of the job and soft-state shells, pure (the job simulator runs them too)."""


def test_the_shells_planners_import_without_trio_libp2p_or_cryptography() -> None:
    done = _run_blocked("""
        import importlib, sys
        for name in sys.argv[1:]:
            importlib.import_module(name)
        print("imported", len(sys.argv) - 1)
    """, *PLANNERS)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"imported {len(PLANNERS)}"
