"""Networks know no files: facegcn_tf/networks imports neither the assets layer nor subprocess.

Locating, fetching and converting weights live in facegcn_tf.assets, which sits above
facegcn_tf.networks; a network is given arrays or a file's path.
"""

import ast
import pathlib

import pytest

import facegcn_tf

NETWORKS = pathlib.Path(facegcn_tf.__file__).parent / "networks"
FORBIDDEN = ("facegcn_tf.assets", "subprocess", "urllib", "requests", "http")


def _imported_modules(path: pathlib.Path) -> set:
  """Every module a file imports, with ``from a import b`` giving both ``a`` and ``a.b``."""
  names = set()
  for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = "." * node.level + (node.module or "")
      names.add(base)
      names.update(f"{base}.{alias.name}" if node.module else base + alias.name
                   for alias in node.names)
  return names


def _forbidden(module: str) -> bool:
  return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def test_the_import_scan_sees_forbidden_imports(tmp_path):
  sample = tmp_path / "sample.py"
  sample.write_text("import subprocess as sp\nfrom facegcn_tf import assets\n"
                    "from facegcn_tf.assets.loaders import load_identity_encoder\n"
                    "from facegcn_tf.networks import rnet\n")
  found = sorted(m for m in _imported_modules(sample) if _forbidden(m))
  assert found == ["facegcn_tf.assets", "facegcn_tf.assets.loaders",
                   "facegcn_tf.assets.loaders.load_identity_encoder", "subprocess"]


@pytest.mark.parametrize("path", sorted(NETWORKS.glob("*.py")), ids=lambda p: p.name)
def test_network_module_imports_no_file_layer(path):
  bad = sorted(m for m in _imported_modules(path) if _forbidden(m))
  assert not bad, f"{path.name} imports {bad}: locate/fetch files in facegcn_tf.assets instead"


def test_networks_package_is_scanned():
  assert len(list(NETWORKS.glob("*.py"))) > 5
