#!/usr/bin/env python
"""Cost of the guarantee: constrained vs unconstrained training step, certify() time, forward time.

All in one run, side by side (ratios; absolute times on a shared machine are noisy):

* one training step (forward + backward + Adam) of the averaged network with the constraint on
  (power iteration + step rule) vs the same architecture with the constraint off, and vs a
  DnCNN of the same depth and width;
* ``certify()`` (rigorous part, and with the adversarial search) of a model file;
* denoiser forward time on a 256x256 grey image for the averaged network, DnCNN and deepinv's
  DnCNN architecture (random weights, so no download).

Usage::

    python scripts/bench_prior.py [--model priors/weights/averaged_gray.pt] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from priors.averaged import AveragedResNet  # noqa: E402
from priors.baselines import DnCNN  # noqa: E402
from priors.certify import certify, rigorous_bounds  # noqa: E402
from priors.pretrained import WEIGHTS_DIR, load_checkpoint  # noqa: E402


def timed(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _peak_rss_mb(fn) -> float:
    """Peak resident memory (MB) of ``fn()`` run in a fresh process (fork), from getrusage."""
    import multiprocessing as mp
    import resource

    def child(q):
        fn()
        q.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    p.join()
    return q.get() if not q.empty() else float("nan")


def _bench_ridge(path: str, img: torch.Tensor, fwd: dict, repeats: int) -> None:
    """The convex ridge prior side by side with the others: one denoiser forward (one gradient of R),
    its rigorous certificate, and the peak memory of denoising a 1024x1024 image."""
    model = load_checkpoint(path).eval()
    with torch.no_grad():
        t_den = timed(lambda: model(img, 25 / 255), repeats)
        t_grad = timed(lambda: model.grad(img, 1.0), repeats)
    t0 = time.perf_counter()
    cert = model._certificate()  # the rigorous part, uncached
    t_cert = time.perf_counter() - t0
    big = torch.rand(1, 1, 1024, 1024)

    def denoise_big():
        with torch.no_grad():
            model(big, 25 / 255)

    base_mb = _peak_rss_mb(lambda: None)
    peak = _peak_rss_mb(denoise_big)
    print()
    print("| convex ridge prior (model file) | value |")
    print("|---|---|")
    print(f"| one-step denoiser forward, 256x256 grey | {1e3 * t_den:.1f} ms ({t_den / fwd['DnCNN ours (random init)']:.2f}x our DnCNN) |")
    print(f"| one gradient of R, 256x256 grey | {1e3 * t_grad:.1f} ms |")
    print(f"| rigorous certificate (symbol bound of the 13x13 kernel) | {t_cert:.2f} s |")
    print(f"| peak memory, denoising 1024x1024 (fresh process, minus an idle one) | {peak - base_mb:.0f} MB |")
    print(f"\nridge certificate: alpha {cert.alpha:.4f}, grad Lipschitz {cert.details['grad_lipschitz']:.4f}\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(WEIGHTS_DIR / "averaged_gray.pt"))
    ap.add_argument("--ridge", default=str(WEIGHTS_DIR / "ridge_gray.pt"), help="convex ridge model file")
    ap.add_argument("--ridge-stack", default=str(WEIGHTS_DIR / "ridge_stack_gray.pt"), help="ridge stack model file")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--depth", type=int, default=8)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    print(f"## Prior benchmark (threads={args.threads}, median of {args.repeats})\n")
    x = torch.rand(16, 1, 40, 40)
    sig = torch.full((16,), 25 / 255)
    nets = {
        "averaged, constraint on": AveragedResNet(width=args.width, depth=args.depth),
        "averaged, constraint off": AveragedResNet(width=args.width, depth=args.depth, constrained=False),
        "DnCNN (same depth/width)": DnCNN(width=args.width, depth=args.depth),
    }
    if Path(args.model).is_file():
        # the trained model's blocks may use several sub-steps each: time its real training step too
        trained = load_checkpoint(args.model)
        subs = sum(b.schedule()[1] for b in trained.blocks)
        nets[f"averaged, model file ({subs} sub-steps in all)"] = trained
    times = {}
    for name, net in nets.items():
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)

        def step(net=net, opt=opt):
            loss = F.mse_loss(net(x, sig), x)
            opt.zero_grad()
            loss.backward()
            opt.step()

        times[name] = timed(step, args.repeats)
    base = times["averaged, constraint off"]
    print("| training step (16x40x40 batch) | ms | ratio to constraint off |")
    print("|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {1e3 * t:.1f} | {t / base:.2f}x |")

    print()
    img = torch.rand(1, 1, 256, 256)
    fwd = {}
    models = {"averaged (random init)": nets["averaged, constraint on"].eval(),
              "DnCNN ours (random init)": nets["DnCNN (same depth/width)"].eval()}
    if Path(args.model).is_file():
        models["averaged (model file)"] = load_checkpoint(args.model).eval()
    if Path(args.ridge_stack).is_file():
        models["ridge stack (model file)"] = load_checkpoint(args.ridge_stack).eval()
    try:
        import deepinv

        models["deepinv DnCNN arch (random init, 17 layers, 64 ch)"] = deepinv.models.DnCNN(
            in_channels=1, out_channels=1, pretrained=None).eval()
    except Exception as exc:  # pragma: no cover - informative only
        print(f"(deepinv DnCNN skipped: {exc})")
    for name, m in models.items():
        with torch.no_grad():
            fwd[name] = timed(lambda m=m: m(img, 25 / 255), args.repeats)
    print("| denoiser forward, 256x256 grey | ms |")
    print("|---|---|")
    for name, t in fwd.items():
        print(f"| {name} | {1e3 * t:.1f} |")

    if Path(args.ridge).is_file():
        _bench_ridge(args.ridge, img, fwd, args.repeats)
    if "ridge stack (model file)" in models:
        t0 = time.perf_counter()
        for block in models["ridge stack (model file)"].blocks:
            block._certificate()  # the rigorous part of each block, uncached
        print(f"ridge stack: rigorous certificate {time.perf_counter() - t0:.2f} s, forward "
              f"{fwd['ridge stack (model file)'] / fwd['DnCNN ours (random init)']:.2f}x our DnCNN\n")

    print()
    target = load_checkpoint(args.model) if Path(args.model).is_file() else nets["averaged, constraint on"]
    label = args.model if Path(args.model).is_file() else "random-init averaged network"
    t0 = time.perf_counter()
    rigorous_bounds(target)
    t_rig = time.perf_counter() - t0
    cert = certify(target)
    print(f"| certify() of {label} | seconds |")
    print("|---|---|")
    print(f"| rigorous bound only | {t_rig:.2f} |")
    print(f"| rigorous + adversarial search | {cert.seconds:.2f} |")
    print(f"\nbound {cert.lipschitz:.6f}, alpha {cert.alpha}, empirical max {cert.empirical:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
