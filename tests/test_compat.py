"""tfft.compat: every private Keras / TensorFlow name tfft touches still exists in this installation."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tfft
from tfft import compat

PACKAGE = Path(tfft.__file__).parent


def test_every_private_name_tfft_touches_exists():
    import keras
    import tensorflow as tf

    gone = compat.missing()
    assert not gone, (f"Keras {keras.__version__} / TensorFlow {tf.__version__} no longer have "
                      f"{', '.join(gone)}: update tfft/compat.py (and the supported versions in pyproject.toml)")


def test_no_module_but_compat_reaches_a_private_keras_or_tensorflow_name():
    private_module = re.compile(r"^(keras\.src|tensorflow\.python)(\.|$)")
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "compat.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and private_module.match(node.module):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.module}")
            elif isinstance(node, ast.Import):
                found += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {a.name}" for a in node.names
                          if private_module.match(a.name)]
    assert found == []
