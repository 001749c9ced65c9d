"""Start a prox-denoiser ridge model from a trained one-step ridge model.

The kernels, splines and ``mu(sigma)`` are copied; the prox weight ``lam(sigma)`` starts at the
architecture's default (``lam = (sigma / sigma_ref)^2``).  The written file is a model file that
``init_from`` in a training config can point to::

    python scripts/ridge_prox_init.py --from priors/weights/ridge_gray.pt --out runs/ridge_prox_init.pt
    stablepnp train priors/configs/ridge_prox_gray.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from priors.pretrained import load_checkpoint  # noqa: E402
from priors.registry import save_model_file  # noqa: E402
from priors.ridge import RidgeConfig, RidgeRegularizer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="source", default="priors/weights/ridge_gray.pt")
    ap.add_argument("--out", default="runs/ridge_prox_init.pt")
    args = ap.parse_args(argv)
    src = load_checkpoint(args.source)
    if not isinstance(src, RidgeRegularizer):
        print(f"ridge_prox_init: '{args.source}' is not a ridge model", file=sys.stderr)
        return 2
    net = RidgeRegularizer(RidgeConfig.from_dict({**src.config.to_dict(), "denoiser": "prox"}))
    state = {k: v for k, v in src.state_dict().items() if k != "step_raw"}
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert list(missing) == ["lam_raw"] and not unexpected, (missing, unexpected)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_model_file(net.eval(), args.out, arch="ridge", training={"init_from": str(args.source)})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
