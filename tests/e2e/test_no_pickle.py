"""No pickle in the serving process: the real service routes through learned bundles (and
hot-reloads one from a registry), then its own import audit, read over /metrics, says that no
pickle-capable loader was imported and nothing was unpickled. A second process shows that the
audit does see both."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from benchmarks.procs import scrape_metrics
from converters.registry_ops import publish
from router_service.bundles.store import DirStore
from router_service.client import RouterClient, parse_candidates
from tests.support.procs import REPO, ServiceProcess, free_port


def test_serving_process_never_loads_a_pickle_capable_loader(
    default_bundle: Path, tier_bundle: Path, tmp_path: Path
) -> None:
    store = DirStore(tmp_path / "registry")
    publish(store, default_bundle)
    metrics = free_port()
    service = ServiceProcess(
        ["--bundle", str(tier_bundle)],
        env={
            "ROUTEIQ_METRICS__PORT": str(metrics),
            "ROUTEIQ_REGISTRY__SOURCE": str(store.root),
            "ROUTEIQ_REGISTRY__POLL_S": "0.2",
        },
    ).wait_ready(60)
    try:
        client = RouterClient(service.target)
        for router in ("llmrouter-knn-tfidf", "llmrouter-tier-tfidf"):
            answer = client.route(
                "Prove that there are infinitely many primes.",
                parse_candidates("gpt-4o:2.5:10,gpt-4o-mini:0.15:0.6"),
                router=router,
            )
            assert answer.source != 0
        publish(store, default_bundle)  # a hot reload: fetched, checked in the child, loaded
        for _ in range(100):
            if any(r.version == "2" for r in client.list_routers().routers):
                break
            time.sleep(0.1)
        assert any(r.version == "2" for r in client.list_routers().routers)
        client.close()
        seen = scrape_metrics([metrics])
        assert seen["routeiq_unsafe_loaders_loaded"] == 0
        assert seen["routeiq_unpickled_classes"] == 0
    finally:
        service.stop()


def test_the_audit_sees_a_loader_and_an_unpickled_class() -> None:
    code = (
        "import pickle, collections\n"
        "from router_service.security.audit import ImportAudit\n"
        "audit = ImportAudit.install()\n"
        "import joblib\n"
        "pickle.loads(pickle.dumps(collections.OrderedDict()))\n"
        "print(len(audit.unsafe_loaded()) > 0, audit.imported[0], audit.unpickled)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert done.stdout.strip() == "True joblib ['collections.OrderedDict']"
