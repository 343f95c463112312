"""The package's structure: no module imports, directly or through others, a module that imports
it (function-level imports count: they are how cycles hide)."""
import grimp


def test_no_import_cycles():
    graph = grimp.build_graph("wukong_data")
    cycles = sorted((a, b) for a in graph.modules for b in graph.find_modules_directly_imported_by(a)
                    if graph.chain_exists(importer=b, imported=a))
    assert not cycles, "import cycles (a imports b, and b leads back to a):\n" + "\n".join(f"{a} -> {b}" for a, b in cycles)
