"""Package discovery for cortexbench's repository layout.

The repository keeps ``core/``, ``plugins/`` and ``registry/`` at its root (the layout contributors
see), but everything installs under the single import name ``cortexbench``:

    core/      -> cortexbench            (scorer, plugin manager, interfaces, data, CLI)
    plugins/   -> cortexbench.plugins    (built-in model, benchmark and metric plugins)
    registry/  -> cortexbench.registry   (score store and its index)

Sub-packages are discovered here so that a contributor adding ``plugins/benchmarks/<name>/`` does not
have to edit a package list; all other metadata lives in pyproject.toml.
"""
from setuptools import find_packages, setup

ROOTS = {"cortexbench": "core", "cortexbench.plugins": "plugins", "cortexbench.registry": "registry"}

packages = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages.extend(f"{name}.{sub}" for sub in find_packages(folder))

setup(packages=packages, package_dir=ROOTS)
