"""``routeiq-bundle``: train, evaluate, calibrate, convert, sign and publish router bundles.

Every command prints progress to stderr and a short summary to stdout (``--json`` for a
machine-readable one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from converters.datasets import FORMATS
from converters.features.build import FEATURIZER_KINDS
from converters.routers import ROUTER_CHOICES
from router_service.errors import RouteIQError

__all__ = ["main"]


def _step(msg: str) -> None:
    print(f"[routeiq-bundle] {msg}", file=sys.stderr, flush=True)


def _bar(desc: str, total: int) -> Callable[[int], None]:
    bar = tqdm(
        total=total,
        desc=desc,
        unit="q",
        file=sys.stderr,
        leave=False,
        mininterval=2.0,
        disable=False,
    )

    def advance(n: int) -> None:
        bar.update(n)
        if bar.n >= total:
            bar.close()

    return advance


def _pct(x: float) -> str:
    return f"{x:.3f}"


def _frontier_line(report: dict[str, Any]) -> str:
    """Where the λ sweep lies below the single-model frontier, if anywhere, and why."""
    below = report["below_frontier"]
    if not below:
        return "every λ of the sweep lies on or above the single-model frontier"
    worst = max(below, key=lambda p: p["shortfall"])
    share = ", ".join(
        f"{m} {v:.0%}" for m, v in sorted(worst["call_share"].items(), key=lambda kv: -kv[1]) if v
    )
    return (
        f"below the single-model frontier at {len(below)} of {len(report['curve'])} λ; worst "
        f"at λ = {worst['cost_weight']:.4g}: {worst['avg_quality']:.3f} at cost "
        f"{worst['avg_cost']:.4g} where mixing single models reaches "
        f"{worst['frontier_quality']:.3f} (−{worst['shortfall']:.3f}); it sends {share}"
    )


def _interval_line(iv: dict[str, Any]) -> str:
    """The sampling error of the test rows (bootstrap intervals)."""
    (q_lo, q_hi), (d_lo, d_hi) = iv["router_quality"], iv["vs_best_single"]
    return (
        f"{iv['level']:.0%} bootstrap intervals over the test rows: router quality "
        f"{q_lo:.3f}–{q_hi:.3f}, router minus best single {d_lo:+.3f} to {d_hi:+.3f}"
    )


def _summary(report: dict[str, Any], unit: str) -> str:
    r, b, o, rnd = (report[k] for k in ("router", "best_single", "oracle", "random"))
    lines = [
        f"test rows: {report['rows']}, default cost_weight λ = {report['cost_weight']:.4g}",
        f"{'policy':<22}{'avg quality':>12}{'avg cost':>14}",
        f"{'router':<22}{_pct(r['avg_quality']):>12}{r['avg_cost']:>14.4g}",
        f"{'best single (' + b['model'][:8] + ')':<22}{_pct(b['avg_quality']):>12}"
        f"{b['avg_cost']:>14.4g}",
        f"{'oracle':<22}{_pct(o['avg_quality']):>12}{o['avg_cost']:>14.4g}",
        f"{'random':<22}{_pct(rnd['avg_quality']):>12}{rnd['avg_cost']:>14.4g}",
        f"cost unit: {unit}; frontier gain (mean quality above single models): "
        f"{report['frontier_gain']['mean_gain']:.4f}; largest cost step between neighbouring "
        f"λ: {report['max_cost_jump']:.0%} of the dearest model's cost",
        _frontier_line(report),
        _interval_line(report["intervals"]),
    ]
    if "apgr" in report:
        a = report["apgr"]
        lo, hi = a["interval"]
        lines.append(
            f"APGR {a['apgr']:.3f} ({report['intervals']['level']:.0%} interval {lo:.3f}–"
            f"{hi:.3f}; random {a['random_apgr']:.3f}; strong {a['strong']}, weak {a['weak']})"
        )
    share = ", ".join(f"{m}: {s:.2f}" for m, s in r["call_share"].items() if s > 0)
    lines.append(f"router call share: {share}")
    return "\n".join(lines)


def _telemetry_summary(report: dict[str, Any]) -> str:
    ev = report["evaluation"]
    cmp, a, b = ev["comparison"], ev["challenger"], ev["champion"]
    dropped = ", ".join(f"{k} {v}" for k, v in report["join"]["dropped"].items()) or "none"
    return "\n".join(
        [
            f"router {report['router']}: {report['join']['joined']} joined requests "
            f"(left out: {dropped}); held out the latest {ev['rows']}",
            f"{'policy':<26}{'quality':>9}{'± se':>8}{'cost':>10}{'evidence':>10}",
            f"{'challenger (λ ' + format(a['cost_weight'], '.3g') + ')':<26}"
            f"{a['quality']:>9.4f}{a['quality_se']:>8.4f}{a['cost']:>10.4g}{a['matched_rows']:>10}",
            f"{'champion (v' + ev['champion_version'] + ', as logged)':<26}"
            f"{b['quality']:>9.4f}{b['quality_se']:>8.4f}{b['cost']:>10.4g}{b['matched_rows']:>10}",
            f"gain {cmp['quality_gain']:+.4f} ± {cmp['quality_gain_se']:.4f} (95 % lower bound "
            f"{cmp['quality_gain_lower95']:+.4f}), cost {cmp['cost_ratio']:.3f}× the champion's",
            f"estimator: {report['estimator']}",
        ]
    )


def _cmd_train(args: argparse.Namespace) -> int:
    if args.from_telemetry is not None:
        return _cmd_train_telemetry(args)
    if args.data is None:
        raise ValueError("train needs --data (a dataset) or --from-telemetry (your traffic)")
    from converters.train import train_bundle

    if args.router is None:
        args.router = "knn"
    result = train_bundle(_train_options(args, args.out), _step, _bar)
    _sign(args)
    return _trained(args, result, lambda: _summary(result.report, result.manifest.cost_unit))


def _trained(args: argparse.Namespace, result: Any, summary: Callable[[], str]) -> int:
    """What ``train`` prints about the bundle it wrote: JSON with ``--json``, else a line and
    ``summary()``."""
    m = result.manifest
    if args.json:
        doc = {"bundle": str(args.out), "name": m.name, "version": m.version}
        print(json.dumps(doc | {"report": result.report}, indent=2))
    else:
        print(f"bundle {m.name}@{m.version} written to {args.out} in {result.seconds:.1f} s")
        print(summary())
    return 0


def _cmd_train_telemetry(args: argparse.Namespace) -> int:
    from converters.retrain import TelemetryOptions, train_from_telemetry

    opts = TelemetryOptions(
        source=args.from_telemetry,
        out=args.out,
        router=args.router or "logistic",
        featurizer=args.featurizer,
        name=args.name,
        data=args.data,
        fmt=args.format,
        holdout=args.holdout,
        seed=args.seed,
        svd_dims=None if args.svd_dims == 0 else args.svd_dims,
        params=json.loads(args.params),
        target=args.target,
        max_weight=args.max_weight,
        prompts=args.prompts,
        hash_key=args.hash_key,
    )
    result = train_from_telemetry(opts, _step, _bar)
    _sign(args)
    if args.plot:
        from converters.evaluation.report import plot_telemetry

        _step(f"plot written to {plot_telemetry(result.report, args.plot)}")
    return _trained(args, result, lambda: _telemetry_summary(result.report))


def _cmd_ood(args: argparse.Namespace) -> int:
    from converters.evaluation.ood import out_of_domain

    report = out_of_domain(_train_options(args, Path()), _step, _bar, args.max_folds)
    if args.plot:
        from converters.evaluation.ood import plot_ood

        _step(f"plot written to {plot_ood(report, args.plot)}")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    head = f"{'held out':<44}{'rows':>6}{'best single':>13}{'in domain':>11}{'out of domain':>15}"
    lines = [f"{report['dataset']}: {report['router']} x {report['featurizer']}", head]
    rows = [*report["folds"], {"fold": "all (pooled)", "rows": report["rows"]} | report]
    for f in rows:
        b, i, o = f["best_single"], f["in_domain"], f["out_of_domain"]
        lines.append(
            f"{f['fold'][:43]:<44}{f['rows']:>6}{b['avg_quality']:>13.3f}"
            f"{i['avg_quality']:>11.3f}{o['avg_quality']:>15.3f}"
        )
    i, o = report["in_domain"], report["out_of_domain"]
    lines.append(
        f"mean gain above the single models: in domain {i['mean_gain']:.4f}, out of domain "
        f"{o['mean_gain']:.4f}: {report['survives']:.0%} survives"
        + (f"; APGR {i['apgr']:.3f} -> {o['apgr']:.3f}" if "apgr" in i else "")
    )
    print("\n".join(lines))
    return 0


def _span(iv: Sequence[float], sign: str = "") -> str:
    return f"[{iv[0]:{sign}.3f}, {iv[1]:{sign}.3f}]"


def _cmd_cv(args: argparse.Namespace) -> int:
    from converters.evaluation.cv import cross_validate

    kinds = args.router
    opts = _train_options(args, Path())
    report = cross_validate(replace(opts, router=kinds[0]), kinds, _step, _bar, args.folds)
    if args.plot:
        from converters.evaluation.cv import plot_cv

        _step(f"plot written to {plot_cv(report, args.plot)}")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    b = report["best_single"]
    lines = [
        f"{report['dataset']}: {report['folds']}-fold cross-validation over {report['rows']} "
        f"rows, {report['featurizer']} features; best single {b['model']} "
        f"{b['avg_quality']:.3f} @ {b['avg_cost']:.4g}; {report['level']:.0%} bootstrap "
        "intervals in brackets",
    ]
    for kind, r in report["kinds"].items():
        line = (
            f"{kind:<10} {r['avg_quality']:.3f} {_span(r['quality_interval'])} @ "
            f"{r['avg_cost']:.4g}  gain {r['mean_gain']:.4f} {_span(r['gain_interval'], '+')}"
            f"  λ step {r['max_cost_jump']:.0%}  below the frontier at "
            f"{len(r['below_frontier'])}/{len(r['curve'])} λ"
            + (f" (worst −{r['worst_shortfall']:.4f})" if r["below_frontier"] else "")
        )
        if "apgr" in r:
            line += f"  APGR {r['apgr']:.3f} {_span(r['apgr_interval'])}"
        lines.append(line)
    first = kinds[0]
    for kind, d in report["versus_first"].items():
        line = (
            f"{kind} − {first}: quality {d['quality']:+.3f} {_span(d['quality_interval'], '+')}"
            f", gain {d['mean_gain']:+.4f} {_span(d['gain_interval'], '+')}"
        )
        if "apgr" in d:
            line += f", APGR {d['apgr']:+.3f} {_span(d['apgr_interval'], '+')}"
        lines.append(line)
    print("\n".join(lines))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from converters.evaluation.bundle_eval import evaluate_bundle

    report, manifest = evaluate_bundle(
        args.bundle, args.data, args.format, cost_weight=args.cost_weight, bar=_bar
    )
    if args.plot:
        from converters.evaluation.report import plot_curve

        plot_curve(
            report,
            args.plot,
            f"{manifest.name}@{manifest.version} on {args.data.name}",
            manifest.cost_unit,
        )
        _step(f"plot written to {args.plot}")
    print(json.dumps(report, indent=2) if args.json else _summary(report, manifest.cost_unit))
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from converters.evaluation.bundle_eval import calibrate_bundle

    lam, manifest = calibrate_bundle(
        args.bundle, args.data, args.format, target=args.target, bar=_bar
    )
    print(
        f"bundle {manifest.name}@{manifest.version}: default cost_weight λ = {lam:.6g} "
        f"(target {args.target}, {len(manifest.calibration)} calibration points)"
    )
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from converters.convert_model import convert_estimator

    manifest, parity = convert_estimator(
        args.model,
        args.out,
        like=args.like,
        allow_pickle=args.allow_pickle,
        name=args.name,
        data=args.data,
        fmt=args.format,
        bar=_bar,
    )
    _sign(args)
    print(
        f"bundle {manifest.name}@{manifest.version} written to {args.out}; parity: "
        f"max |diff| {parity['max_abs_diff']:.2e}, same decision "
        f"{parity['decision_agreement']:.4f} on {int(parity['n'])} rows"
    )
    return 0


def _sign(args: argparse.Namespace) -> None:
    if args.sign is not None:
        from router_service.bundles.signing import sign_bundle

        _step(f"signed by key {sign_bundle(args.out, args.sign)}")


def _cmd_keygen(args: argparse.Namespace) -> int:
    from router_service.bundles.signing import generate_keypair

    kid = generate_keypair(args.out)
    print(f"key {kid}: private {args.out} (keep it secret), public {args.out}.pub")
    return 0


def _store(args: argparse.Namespace) -> Any:
    from converters.registry_ops import open_registry

    if not args.registry:
        raise ValueError("no registry: pass --registry DIR|s3://bucket/prefix")
    return open_registry(args.registry, args.s3_endpoint)


def _cmd_publish(args: argparse.Namespace) -> int:
    from converters.registry_ops import publish, set_rollout

    store = _store(args)
    if args.if_better:
        better, why = _better(store, args)
        print(why)
        if not better:
            return NOT_PUBLISHED
    held = args.canary is not None or args.shadow
    done = publish(store, args.bundle, args.sign, hold=held)
    signed = f", signed by {done.signed_by}" if done.signed_by else ""
    print(f"published {done.router} version {done.version} (sha {done.sha256[:12]}{signed})")
    if held:
        rollout = set_rollout(
            store,
            done.router,
            challenger=done.version,
            share=args.canary or 0.0,
            shadow=args.shadow,
            assign_by=args.assign_by,
        )
        print(f"rollout: {rollout.describe()}")
    return 0


NOT_PUBLISHED = 3
"""``publish --if-better``'s exit status when the bundle does not beat the champion."""


def _better(store: Any, args: argparse.Namespace) -> tuple[bool, str]:
    """Whether the bundle beat the champion it was judged against (``train --from-telemetry``)
    by the margin, and that champion still serves."""
    from converters.registry_ops import MAX_FILE_BYTES
    from converters.retrain import verdict
    from router_service.bundles.verify import verify_bundle

    manifest = verify_bundle(args.bundle, MAX_FILE_BYTES).manifest
    evaluation = manifest.provenance.get("telemetry_evaluation")
    if not isinstance(evaluation, dict):
        raise ValueError(
            f"{args.bundle}: no evaluation against a champion; --if-better needs a bundle "
            "trained with --from-telemetry"
        )
    listing = store.listing().get(manifest.name)
    serving = None if listing is None else (listing.rollout.champion or listing.newest)
    judged = evaluation.get("champion_version", "")
    if serving is not None and str(serving) != judged:
        return False, (
            f"not published: judged against {manifest.name} version {judged or '?'}, but the "
            f"registry's champion is version {serving}; retrain on its traffic"
        )
    better, why = verdict(evaluation, args.margin, args.cost_tolerance)
    return better, ("publishing: " if better else "not published: ") + why


def _cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    listing = store.listing()
    rows = {
        name: {
            "versions": sorted(entry.versions),
            "rollout": entry.rollout.model_dump(exclude_defaults=True),
            "serving": entry.rollout.describe(),
            **({"rollout_error": entry.rollout_error} if entry.rollout_error else {}),
        }
        for name, entry in sorted(listing.items())
        if args.router in (None, name)
    }
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for name, row in rows.items():
        versions = ", ".join(map(str, row["versions"])) or "none"
        print(f"{name}: versions {versions}; {row['serving']}")
        if "rollout_error" in row:
            print(f"  rollout.json: {row['rollout_error']}")
    if not rows:
        print(f"{store.description}: no routers" + (f" named {args.router}" if args.router else ""))
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    from converters.registry_ops import promote

    rollout = promote(_store(args), args.router, args.version, newest=args.newest)
    print(f"{args.router}: {rollout.describe()}")
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from converters.registry_ops import rollback

    rollout = rollback(_store(args), args.router, args.to)
    print(f"{args.router}: {rollout.describe()} (pinned; `promote` moves it on)")
    return 0


def _cmd_rollout(args: argparse.Namespace) -> int:
    from converters.registry_ops import set_rollout

    if args.off:
        rollout = set_rollout(_store(args), args.router)
    else:
        version = args.shadow if args.shadow is not None else args.challenger
        if version is None or (args.shadow is None and args.share is None):
            raise ValueError("give --challenger V --share F, --shadow V, or --off")
        rollout = set_rollout(
            _store(args),
            args.router,
            challenger=version,
            share=args.share or 0.0,
            shadow=args.shadow is not None,
            assign_by=args.assign_by,
        )
    print(f"{args.router}: {rollout.describe()}")
    return 0


def _registry_args(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--registry",
        default=os.environ.get("ROUTEIQ_REGISTRY__SOURCE"),
        help="a directory or s3://bucket/prefix (default: $ROUTEIQ_REGISTRY__SOURCE)",
    )
    cmd.add_argument(
        "--s3-endpoint",
        default=os.environ.get("ROUTEIQ_REGISTRY__S3__ENDPOINT_URL"),
        help="S3-compatible endpoint URL (default: $ROUTEIQ_REGISTRY__S3__ENDPOINT_URL, "
        "else AWS_ENDPOINT_URL); credentials from the AWS environment variables",
    )


def _sign_arg(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--sign", type=Path, metavar="KEY", help="sign the manifest with this Ed25519 key"
    )


def _cmd_export_encoder(args: argparse.Namespace) -> int:
    from converters.convert_model import export_encoder

    paths, cosine = export_encoder(args.out, int8=args.int8)
    print(
        f"encoder written: {', '.join(str(p) for p in paths)}; parity vs numpy reference: "
        f"min cosine {cosine:.6f}"
    )
    return 0


def _router_kinds(value: str) -> list[str]:
    """``--router`` of ``cv``: comma-separated kinds."""
    kinds = [k.strip() for k in value.split(",") if k.strip()]
    wrong = [k for k in kinds if k not in ROUTER_CHOICES or k == "tier"]
    if not kinds or wrong:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected router kinds separated by commas, from "
            f"{', '.join(k for k in ROUTER_CHOICES if k != 'tier')}"
        )
    return kinds


def _router_args(
    cmd: argparse.ArgumentParser, default: str | None = "knn", *, many: bool = False
) -> None:
    """How to train a router: shared by ``train``, ``ood`` and (``many`` kinds) ``cv``."""
    if many:
        cmd.add_argument(
            "--router",
            type=_router_kinds,
            default=_router_kinds("knn,linear,logistic"),
            help="router kinds to compare, comma-separated; each other kind is compared with "
            "the first (default: knn,linear,logistic)",
        )
    else:
        cmd.add_argument(
            "--router",
            choices=ROUTER_CHOICES,
            default=default,
            help="auto: the kind that gains most on the validation slice; tier: quality per "
            "price rung, routes between any priced models (default: knn; logistic from "
            "telemetry)",
        )
    cmd.add_argument("--featurizer", choices=FEATURIZER_KINDS, default="tfidf")
    cmd.add_argument("--seed", type=int, default=0)
    cmd.add_argument("--svd-dims", type=int, default=256, help="TF-IDF SVD size; 0 = none")
    cmd.add_argument("--params", default="{}", help="router hyper-parameters as JSON")
    cmd.add_argument(
        "--target",
        help="default λ target: best-single, cost:X, top-share:S, quality-share:F or "
        "quality-of:MODEL:F (default: best-single; quality-share:0.97 for tier); from "
        "telemetry: champion-cost (default) or cost:X",
    )
    cmd.add_argument(
        "--task-smoothing",
        type=float,
        default=0.5,
        help="shrink training targets toward their task's mean (1 = off)",
    )
    cmd.add_argument(
        "--calibration",
        choices=("none", "platt"),
        default="none",
        help="platt: map each model's predicted quality to a calibrated probability (fitted on "
        "the validation slice, part of the exported graph)",
    )


def _train_options(args: argparse.Namespace, out: Path) -> Any:
    from converters.train import TrainOptions

    return TrainOptions(
        data=args.data,
        fmt=args.format,
        router=args.router,
        featurizer=args.featurizer,
        out=out,
        name=getattr(args, "name", None),
        seed=args.seed,
        svd_dims=None if args.svd_dims == 0 else args.svd_dims,
        params=json.loads(args.params),
        target=args.target,
        task_smoothing=args.task_smoothing,
        calibration=args.calibration,
    )


def _data_args(cmd: argparse.ArgumentParser, required: bool = True) -> None:
    cmd.add_argument("--data", type=Path, required=required, help="dataset file or directory")
    cmd.add_argument("--format", choices=FORMATS, default="wide", help="dataset format")


def _registry_commands(sub: Any) -> None:
    """keygen, publish, list, promote, rollback, rollout."""
    keygen = sub.add_parser("keygen", help="new Ed25519 signing key (KEY and KEY.pub)")
    keygen.add_argument("out", type=Path, metavar="KEY")
    keygen.set_defaults(func=_cmd_keygen)

    pub = sub.add_parser("publish", help="verify a bundle and publish it as the next version")
    pub.add_argument("bundle", type=Path, metavar="BUNDLE")
    _registry_args(pub)
    _sign_arg(pub)
    side = pub.add_mutually_exclusive_group()
    side.add_argument(
        "--canary", type=float, metavar="SHARE", help="as a challenger on SHARE of requests"
    )
    side.add_argument("--shadow", action="store_true", help="as a shadow challenger")
    pub.add_argument("--assign-by", default="request_id", help="request_id or a label name")
    better = pub.add_argument_group(
        "only if better (a bundle trained with train --from-telemetry; exit status 3 when not)"
    )
    better.add_argument(
        "--if-better",
        action="store_true",
        help="publish only if the bundle beat the serving champion on held-out traffic",
    )
    better.add_argument(
        "--margin", type=float, default=0.01, help="quality gain needed (absolute, 0..1)"
    )
    better.add_argument(
        "--cost-tolerance",
        type=float,
        default=0.05,
        help="cost allowed above the champion's (relative; default 0.05 = 5 %%: λ is "
        "calibrated on other rows than the held-out ones, so cost lands within a few %%)",
    )
    pub.set_defaults(func=_cmd_publish)

    lst = sub.add_parser("list", help="routers, versions and rollouts in a registry")
    lst.add_argument("router", nargs="?")
    _registry_args(lst)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_cmd_list)

    prom = sub.add_parser("promote", help="pin a version (default: the challenger) as champion")
    prom.add_argument("router")
    prom.add_argument("version", nargs="?", type=int)
    prom.add_argument("--newest", action="store_true", help="unpin: the newest version serves")
    _registry_args(prom)
    prom.set_defaults(func=_cmd_promote)

    back = sub.add_parser("rollback", help="pin the version before the champion (or --to V)")
    back.add_argument("router")
    back.add_argument("--to", type=int, metavar="VERSION")
    _registry_args(back)
    back.set_defaults(func=_cmd_rollback)

    roll = sub.add_parser("rollout", help="start or end a canary or shadow challenger")
    roll.add_argument("router")
    mode = roll.add_mutually_exclusive_group(required=True)
    mode.add_argument("--challenger", type=int, metavar="VERSION")
    mode.add_argument("--shadow", type=int, metavar="VERSION")
    mode.add_argument("--off", action="store_true")
    roll.add_argument("--share", type=float, help="the challenger's share of requests, 0..1")
    roll.add_argument("--assign-by", default="request_id", help="request_id or a label name")
    _registry_args(roll)
    roll.set_defaults(func=_cmd_rollout)


def _evaluation_commands(sub: Any) -> None:
    """ood, cv, eval."""
    ood = sub.add_parser(
        "ood", help="out-of-domain evaluation: train without each task, test on it"
    )
    _data_args(ood)
    _router_args(ood)
    ood.add_argument("--max-folds", type=int, default=16, help="more tasks: hash groups")
    ood.add_argument("--plot", type=Path, help="write both cost-quality curves (PNG)")
    ood.add_argument("--json", action="store_true")
    ood.set_defaults(func=_cmd_ood)

    cv = sub.add_parser(
        "cv", help="cross-validation: router kinds compared on every row, with intervals"
    )
    _data_args(cv)
    _router_args(cv, many=True)
    cv.add_argument("--folds", type=int, default=5)
    cv.add_argument("--plot", type=Path, help="write every kind's cost-quality curve (PNG)")
    cv.add_argument("--json", action="store_true")
    cv.set_defaults(func=_cmd_cv)

    evaluate = sub.add_parser("eval", help="evaluate a bundle on a dataset's test rows")
    evaluate.add_argument("--bundle", type=Path, required=True)
    _data_args(evaluate)
    evaluate.add_argument("--cost-weight", type=float, help="λ (default: the bundle's)")
    evaluate.add_argument("--plot", type=Path, help="write the cost-quality curve (PNG)")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=_cmd_eval)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="routeiq-bundle", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a router and write a bundle")
    _data_args(train, required=False)
    _router_args(train, default=None)
    train.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    train.add_argument(
        "--name",
        help="router name (default: dataset-router-featurizer; from telemetry: the router whose "
        "decisions to learn from, needed when the telemetry holds several)",
    )
    train.add_argument("--json", action="store_true")
    own = train.add_argument_group(
        "from your own traffic (decision events joined with outcome reports; --data adds a "
        "base dataset; --router logistic (default) or linear)"
    )
    own.add_argument(
        "--from-telemetry",
        metavar="SOURCE",
        help="events JSONL file or directory, or redis://host:port/db?stream=NAME",
    )
    own.add_argument(
        "--holdout",
        type=float,
        default=0.2,
        help="latest share of requests judged on, never trained on",
    )
    own.add_argument(
        "--max-weight", type=float, default=50.0, help="cap on a row's inverse-propensity weight"
    )
    own.add_argument("--plot", type=Path, help="write both cost-quality curves (PNG)")
    own.add_argument(
        "--prompts",
        type=Path,
        help='your own prompts (JSONL: {"prompt": ...} per line), joined by keyed hash to '
        "events recorded without text (telemetry.retain_prompts off)",
    )
    own.add_argument(
        "--hash-key",
        type=Path,
        default=Path("var/prompt-hash.key"),
        help="the service's telemetry.events.hash_key_file (for --prompts)",
    )
    _sign_arg(train)
    train.set_defaults(func=_cmd_train)

    _evaluation_commands(sub)

    calibrate = sub.add_parser("calibrate", help="set a bundle's default λ for a target")
    calibrate.add_argument("--bundle", type=Path, required=True)
    _data_args(calibrate)
    calibrate.add_argument(
        "--target",
        required=True,
        help="best-single, cost:X (bundle cost unit), top-share:S (0..1), quality-share:F "
        "(keep F of the best single model's quality, 0..1) or quality-of:MODEL:F (of MODEL's)",
    )
    calibrate.set_defaults(func=_cmd_calibrate)

    convert = sub.add_parser("convert", help="fitted estimator (skops) -> ONNX bundle")
    convert.add_argument("--model", type=Path, required=True, help=".skops file (or pickle)")
    convert.add_argument(
        "--like",
        type=Path,
        required=True,
        help="bundle whose featurizer, models and costs the router uses",
    )
    convert.add_argument("--out", type=Path, required=True)
    convert.add_argument("--name")
    convert.add_argument(
        "--allow-pickle",
        action="store_true",
        help="read a pickle/joblib file (runs code from the file!)",
    )
    _data_args(convert, required=False)
    _sign_arg(convert)
    convert.set_defaults(func=_cmd_convert)

    _registry_commands(sub)

    encoder = sub.add_parser("export-encoder", help="MiniLM encoder -> ONNX (no torch)")
    encoder.add_argument("--out", type=Path, required=True, help="directory to write")
    encoder.add_argument("--int8", action="store_true", help="also write the int8 variant")
    encoder.set_defaults(func=_cmd_export_encoder)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, OSError, RouteIQError) as exc:
        print(f"routeiq-bundle: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
