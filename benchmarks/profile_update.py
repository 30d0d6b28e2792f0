"""Where rlzoo's training time goes, workload by workload: the profile behind benchmarks/speed.py's ratios.

    python benchmarks/profile_update.py [--only ppo-cartpole,sac-pendulum] [--steps-scale 0.3]

For each workload of ``speed.py`` (same settings, rlzoo as shipped) it prints:

* the whole ``learn()`` call split into env stepping (the vector env's ``step``), the rest of collection
  (acting, buffers, callbacks) and training (``train()``);
* one gradient step: its wall time (median over the run's ``train()`` calls), the floating-point work
  of its matrix products (``torch.utils.flop_counter``), the time those products would take at this
  CPU's measured matmul peak (one 1024x1024 sgemm, at the thread count the model trains with) and at
  the rate the CPU reaches on the update's own largest product shape, the matmul time actually
  profiled (``torch.profiler``), and the number of operator calls; what is left is framework overhead
  (dispatch, autograd bookkeeping, small elementwise kernels) that no faster matmul can remove.

Only rlzoo runs here (peers' totals come from speed.py). Run it on an idle machine: the 1-minute load
is printed, and above the core count the script refuses (exit 2) unless ``--force``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speed import WORKLOADS, _load_ok  # noqa: E402  (the same workloads and load check)

MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::mkldnn_convolution",
              "aten::convolution_backward", "aten::_convolution", "aten::addmv", "aten::mv"}


def build(name: str, scale: float) -> tuple[Any, int]:
    """The rlzoo model of workload ``name`` (as speed.py builds it) and its step count."""
    import rlzoo
    from rlzoo.envs import VecFrameStack, VecNormalize, make_atari_env, make_vec_env
    from rlzoo.utils import linear_schedule

    algo, env_id, n_envs, steps, policy, kwargs, extra, opts = WORKLOADS[name]
    kwargs = {k: linear_schedule(float(v[4:])) if isinstance(v, str) and v.startswith("lin_") else v
              for k, v in kwargs.items()}
    env = (VecFrameStack(make_atari_env(env_id, n_envs=n_envs, seed=0), 4) if opts.get("atari")
           else make_vec_env(env_id, n_envs=n_envs, seed=0))
    if opts.get("normalize"):
        env = VecNormalize(env)
    model = getattr(rlzoo, algo)(policy, env, seed=0, verbose=0, **kwargs, **extra)
    return model, max(int(steps * scale), 1)


def main_optimizer(model: Any) -> torch.optim.Optimizer:
    """The optimizer whose steps count gradient steps (the critic's for actor-critic off-policy methods)."""
    return getattr(model, "critic_optimizer", None) or model.optimizer


def timed(obj: Any, attr: str, bucket: list[float]) -> None:
    """Wrap ``obj.attr`` (an instance attribute) so that each call's wall time lands in ``bucket``."""
    inner = getattr(obj, attr)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            bucket.append(time.perf_counter() - t)
    setattr(obj, attr, wrapper)


def sgemm_rate(m: int, k: int, n: int) -> float:
    """GFLOP/s of an ``(m, k) @ (k, n)`` float32 product at the current thread count."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(5):
        a @ b
    reps = min(max(20, int(1e9 / (2 * m * k * n))), 20_000)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * m * k * n * reps / (time.perf_counter() - t) / 1e9


def largest_product(events: list[Any]) -> tuple[int, int, int]:
    """The largest (m, k, n) 2-d matrix product among profiled ``aten::mm`` / ``aten::addmm`` calls."""
    best = (1, 1, 1)
    for e in events:
        if e.name not in ("aten::mm", "aten::addmm"):
            continue
        shapes = [s for s in e.input_shapes if isinstance(s, list) and len(s) == 2]
        if len(shapes) >= 2:
            (m, k), (_, n) = shapes[-2], shapes[-1]
            if m * k * n > best[0] * best[1] * best[2]:
                best = (m, k, n)
    return best


def profile_workload(name: str, scale: float) -> dict[str, Any]:
    model, steps = build(name, scale)
    env_t: list[float] = []
    train_t: list[float] = []
    collect_t: list[float] = []
    timed(model.env, "step", env_t)
    timed(model, "train", train_t)
    collect_attr = "collect_rollouts"
    timed(model, collect_attr, collect_t)
    counter = [0]
    main_optimizer(model).register_step_post_hook(lambda *_: counter.__setitem__(0, counter[0] + 1))
    t0 = time.perf_counter()
    model.learn(steps)
    total = time.perf_counter() - t0
    grad_steps = counter[0]
    env_s, collect_s, train_s = sum(env_t), sum(collect_t), sum(train_t)  # before the profiled calls below
    threads = torch.get_num_threads()  # what the model trained with (rlzoo picks per model)

    # one more train() call under the flop counter, then one under the profiler (same data, same shapes)
    call = model.train
    args: tuple = ()
    if hasattr(model, "gradient_steps"):
        args = (max(1, int(model.gradient_steps)) if int(model.gradient_steps) > 0 else 1, model.batch_size)
    before = counter[0]
    flops = FlopCounterMode(display=False)
    with flops:
        call(*args)
    per_call_steps = max(counter[0] - before, 1)
    flop_per_step = flops.get_total_flops() / per_call_steps
    before = counter[0]
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        call(*args)
    prof_steps = max(counter[0] - before, 1)
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    top_level = [e for e in events if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    matmul_us = sum(e.self_cpu_time_total for e in events if e.name in MATMUL_OPS)
    step_ms = [1e3 * t / per_call_steps for t in train_t[len(train_t) // 4:-2]] or [float("nan")]
    shape = largest_product(events)
    peak = sgemm_rate(1024, 1024, 1024)
    shape_rate = sgemm_rate(*shape)
    return {
        "name": name, "steps": model.num_timesteps, "threads": threads, "total": total,
        "env": env_s, "collect": collect_s - env_s, "train": train_s, "grad_steps": grad_steps,
        "step_ms": statistics.median(step_ms),
        "mflop": flop_per_step / 1e6, "peak": peak, "shape": shape, "shape_rate": shape_rate,
        "matmul_ms": matmul_us / 1e3 / prof_steps, "ops": len(top_level) / prof_steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(WORKLOADS), help=f"comma-separated, of {', '.join(WORKLOADS)}")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every workload's steps")
    parser.add_argument("--force", action="store_true", help="run even when the machine is loaded")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown or args.steps_scale <= 0:
        print(f"profile_update.py: unknown workload(s) {unknown}; choose from {', '.join(WORKLOADS)}" if unknown
              else "profile_update.py: --steps-scale must be > 0", file=sys.stderr)
        raise SystemExit(2)
    print(f"cores {os.cpu_count()}, load {_load_ok(args.force):.2f}, steps x{args.steps_scale}", flush=True)
    for name in names:
        r = profile_workload(name, args.steps_scale)
        at_peak = r["mflop"] / r["peak"]  # MFLOP / (GFLOP/s) = ms
        at_shape = r["mflop"] / r["shape_rate"]
        m, k, n = r["shape"]
        print(f"\n{name}: {r['steps']} steps in {r['total']:.2f} s ({r['steps'] / r['total']:.0f} steps/s), "
              f"{r['threads']} thread(s)")
        print(f"  learn(): env step {r['env']:.2f} s | rest of collection {r['collect']:.2f} s | "
              f"train {r['train']:.2f} s ({r['grad_steps']} gradient steps) | other "
              f"{r['total'] - r['env'] - r['collect'] - r['train']:.2f} s")
        print(f"  one gradient step: {r['step_ms']:.3f} ms wall; {r['mflop']:.1f} MFLOP of matrix products -> "
              f"{at_peak:.3f} ms at the sgemm peak ({r['peak']:.0f} GFLOP/s), {at_shape:.3f} ms at the rate of its "
              f"largest product {m}x{k}x{n} ({r['shape_rate']:.0f} GFLOP/s); profiled matmul time "
              f"{r['matmul_ms']:.3f} ms; {r['ops']:.0f} operator calls "
              f"(~{1e3 * max(r['step_ms'] - r['matmul_ms'], 0) / max(r['ops'], 1):.1f} us each outside matmuls)",
              flush=True)


if __name__ == "__main__":
    main()
