"""The service stays light and pickle-free: serving imports no training stack."""

import json
import subprocess
import sys

HEAVY = ("sklearn", "skl2onnx", "skops", "joblib", "torch", "cloudpickle", "dill", "converters")


def test_serving_path_imports_no_training_stack() -> None:
    code = (
        "import json, sys\n"
        "import router_service.cli, router_service.server, router_service.bundles.loader\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout) == []
