"""The package's structure: no module imports, directly or through others, a module that imports
it (function-level imports count: they are how cycles hide)."""
import grimp


def test_no_import_cycles():
    graph = grimp.build_graph("wukong_data", cache_dir=None)  # a stale cache answered for old code
    cycles = sorted((a, b) for a in graph.modules for b in graph.find_modules_directly_imported_by(a)
                    if graph.chain_exists(importer=b, imported=a))
    assert not cycles, "import cycles (a imports b, and b leads back to a):\n" + "\n".join(f"{a} -> {b}" for a, b in cycles)


def test_the_trainer_needs_no_part_of_the_pipeline():
    """`wukong_data.filip` (the trainer, its model and checkpoints) reaches neither the build
    directory's module nor polars: it runs where only the trainer's dependencies are installed, such as
    a GPU machine whose image has no polars (benchmarks/gpu_check.py) or a user's own trainer."""
    graph = grimp.build_graph("wukong_data", include_external_packages=True, cache_dir=None)
    chains = [graph.find_shortest_chain(importer=module, imported=target)
              for module in sorted(m for m in graph.modules if m.startswith("wukong_data.filip"))
              for target in ("wukong_data.build", "wukong_data.stages", "polars")]
    assert not any(chains), [chain for chain in chains if chain]


def test_train_reference_checks_its_settings_without_torch():
    """`wukong train-reference` checks what the user typed (config.py, shards.py) before the
    trainer loads: a mistake is answered in a fraction of a second, not after torch's import."""
    graph = grimp.build_graph("wukong_data", include_external_packages=True, cache_dir=None)
    chains = [graph.find_shortest_chain(importer=f"wukong_data.filip.{module}", imported="torch")
              for module in ("config", "shards")]
    assert not any(chains), [chain for chain in chains if chain]
