"""INTL benchmark: loss forward+backward (Gram-block vs reference implementation), training images/s of the CPU
replication configuration, batched tensor augmentation vs the per-image torchvision pipeline, and peak memory.

Speeds are ratios measured in this one run from interleaved repeats (medians). Writes results/intl/bench.json and
prints a table. Usage: OMP_WAIT_POLICY=PASSIVE python benchmarks/intl.py [--threads 1] [--repeats 7] [--quick | --loss-only]
"""
from __future__ import annotations
import argparse, json, os, platform, resource, statistics, sys, time
from pathlib import Path

os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import torch

from reprbook.core import atomic_write, environment_info, markdown_table, results_dir
from reprbook.intl.spectral import intl_loss
from reprbook.intl.ssl import TensorAugment, cifar_views, load_cifar10, load_cifar10_sample, torchvision_pipeline, build
from reprbook.intl.reproduce import replication_config

def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

def timed(fn) -> float:
    t = time.perf_counter(); fn(); return time.perf_counter() - t

def loss_case(m: int, d: int, axis: int, repeats: int, seed: int = 0) -> dict:
    """Forward+backward time of `intl_loss` on two (m, d) views: the Gram path with its default solver ('auto': 'eigh' on the CPU),
    the Gram path with the coupled Newton-Schulz solver, and the reference that materialises the whitened views. Interleaved repeats."""
    g = torch.Generator().manual_seed(seed)
    z1, z2 = torch.randn(m, d, generator=g), torch.randn(m, d, generator=g)
    def run(impl, solver='auto'):
        a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        loss = intl_loss(a, b, axis=axis, impl=impl, solver=solver); loss.backward()
        return loss.detach(), a.grad, b.grad
    variants = {'gram': lambda: run('gram'), 'gram_ns': lambda: run('gram', 'ns'), 'reference': lambda: run('reference')}
    if axis == 1: variants.pop('gram_ns')                     # the batch axis always takes the reference path
    out = {'m': m, 'd': d, 'axis': axis, 'repeats': repeats}
    lr, gr1, gr2 = variants['reference']()
    scale = max(gr1.abs().max().item(), gr2.abs().max().item())
    for name in variants:
        if name == 'reference': continue
        lg, ga1, ga2 = variants[name]()
        tag = '' if name == 'gram' else f'{name}_'
        out[f'{tag}loss_abs_diff'] = abs(lg - lr).item(); out[f'{tag}loss_rel_diff'] = abs(lg - lr).item() / abs(lr).item()
        out[f'{tag}grad_max_abs_diff'] = max((ga1 - gr1).abs().max().item(), (ga2 - gr2).abs().max().item())
        out[f'{tag}grad_rel_diff'] = out[f'{tag}grad_max_abs_diff'] / scale  # gradients are ~1e-5 in absolute terms: compare to the largest entry
    out['grad_max_abs'] = scale
    times = {k: [] for k in variants}
    for _ in range(repeats):  # interleaved
        for k, f in variants.items(): times[k].append(timed(f))
    for k, ts in times.items(): out[f'{k}_ms'] = 1e3 * statistics.median(ts)
    out['speedup'] = out['reference_ms'] / out['gram_ms']
    out['speedup_pairwise_median'] = statistics.median(r / g for g, r in zip(times['gram'], times['reference']))
    if 'gram_ns' in times: out['speedup_ns'] = out['reference_ms'] / out['gram_ns_ms']
    return out

def train_throughput(method: str, steps: int, train_x: torch.Tensor) -> dict:
    cfg = replication_config(method)
    model, opt, sched, _ = build(cfg, len(train_x))
    aug = TensorAugment(cifar_views(cfg.img_size))
    def step(i):
        idx = torch.randint(0, len(train_x), (cfg.batch_size,), generator=torch.Generator().manual_seed(i))
        views = aug(train_x[idx], torch.Generator().manual_seed(i))
        loss, _ = model.method(model.method.encode(model.net, views))
        opt.zero_grad(); loss.backward(); opt.step()
    step(0)  # warm-up
    ts = [timed(lambda: step(i + 1)) for i in range(steps)]
    return {'method': method, 'img_size': cfg.img_size, 'width': cfg.width, 'batch': cfg.batch_size, 'step_s_median': statistics.median(ts),
            'images_per_s': cfg.batch_size / statistics.median(ts), 'steps': steps}

def aug_throughput(x: torch.Tensor, repeats: int) -> dict:
    from PIL import Image
    views = cifar_views(32)
    tensor_aug = TensorAugment(views)
    pipes = [torchvision_pipeline(v) for v in views]
    pipes_f = [torchvision_pipeline(v, pil=False) for v in views]
    def tensor_run(): tensor_aug(x, torch.Generator().manual_seed(0))
    def pil_run():  # the usual Dataset path: uint8 array -> PIL image -> two transformed views
        for im in x.numpy():
            pim = Image.fromarray(im); [p(pim) for p in pipes]
    xf = x.permute(0, 3, 1, 2).float() / 255
    def v2_tensor_run():
        for im in xf: [p(im) for p in pipes_f]
    tt, tp, tv = [], [], []
    for _ in range(repeats):
        tt.append(timed(tensor_run)); tp.append(timed(pil_run)); tv.append(timed(v2_tensor_run))
    n = len(x)
    out = {'images': n, 'views': 2, 'tensor_images_per_s': n / statistics.median(tt), 'pil_images_per_s': n / statistics.median(tp),
           'v2_float_per_image_images_per_s': n / statistics.median(tv)}
    out['speedup_vs_pil'] = out['tensor_images_per_s'] / out['pil_images_per_s']
    out['speedup_vs_v2_float'] = out['tensor_images_per_s'] / out['v2_float_per_image_images_per_s']
    return out

def _loss_table(rows):
    return [{'m': r['m'], 'd': r['d'], 'axis': r['axis'], 'gram ms': r.get('gram_ms'), 'gram (ns) ms': r.get('gram_ns_ms'),
             'reference ms': r.get('reference_ms'), 'speedup': r.get('speedup'), 'speedup (ns)': r.get('speedup_ns'),
             'loss rel diff': r.get('loss_rel_diff'), 'max grad diff / max grad': r.get('grad_rel_diff'), 'note': r.get('skipped', '')} for r in rows]

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--repeats', type=int, default=7)
    ap.add_argument('--train-steps', type=int, default=8)
    ap.add_argument('--quick', action='store_true', help='small sizes only (a smoke test of the script)')
    ap.add_argument('--loss-only', action='store_true', help='only the loss timings (channel axis), written to bench_loss.json')
    ap.add_argument('--out', default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    rec = {'threads': a.threads, 'repeats': a.repeats, 'environment': environment_info(), 'started': time.strftime('%Y-%m-%d %H:%M:%S %Z')}
    # 1. the loss, both implementations, both axes
    sizes = [(64, 256)] if a.quick else [(256, 2048), (256, 512), (128, 8192)]
    rows = []
    for m, d in sizes:
        rows.append(loss_case(m, d, 0, a.repeats)); print(rows[-1], flush=True)
    if a.loss_only:
        rec['loss'] = rows
        out = Path(a.out) if a.out else results_dir('intl')/'bench_loss.json'
        with atomic_write(out, 'w') as f: json.dump(rec, f, indent=1)
        print(markdown_table(_loss_table(rows))); return rec
    for m, d in sizes:
        if d > 2048:  # a d×d Newton-Schulz at d = 8192 takes minutes per call on one CPU core
            rows.append({'m': m, 'd': d, 'axis': 1, 'skipped': 'd=8192 batch-axis whitening needs 8192x8192 matmuls (minutes per call on 1 CPU thread)'}); continue
        rows.append(loss_case(m, d, 1, max(1, min(a.repeats, 3)))); print(rows[-1], flush=True)
    rec['loss'] = rows; rec['rss_after_loss_mb'] = peak_rss_mb()
    # 2. augmentation
    x = load_cifar10_sample('train').x if a.quick else load_cifar10('train', per_class=100).x
    rec['augmentation'] = aug_throughput(x[:200] if a.quick else x[:1000], 1 if a.quick else 3); print(rec['augmentation'], flush=True)
    rec['rss_after_aug_mb'] = peak_rss_mb()
    # 3. training throughput of the CPU replication configuration (augmentation + forward + backward + SGD step)
    rec['training'] = [train_throughput(m, 2 if a.quick else a.train_steps, x) for m in ('intl', 'barlow', 'vicreg')]
    for r in rec['training']: print(r, flush=True)
    rec['peak_rss_mb'] = peak_rss_mb(); rec['total_s'] = time.perf_counter() - t_start
    out = Path(a.out) if a.out else results_dir('intl')/('bench_quick.json' if a.quick else 'bench.json')
    with atomic_write(out, 'w') as f: json.dump(rec, f, indent=1)
    print(markdown_table(_loss_table(rows)))
    au = rec['augmentation']
    print(markdown_table([{'pipeline': 'tensor (batched, ours)', 'images/s (2 views)': au['tensor_images_per_s']},
                          {'pipeline': 'torchvision v2 per image, PIL', 'images/s (2 views)': au['pil_images_per_s']},
                          {'pipeline': 'torchvision v2 per image, float tensor', 'images/s (2 views)': au['v2_float_per_image_images_per_s']}]))
    print(markdown_table([{k: r[k] for k in ('method', 'img_size', 'width', 'batch', 'step_s_median', 'images_per_s')} for r in rec['training']]))
    print(f"peak RSS {rec['peak_rss_mb']:.0f} MB; total {rec['total_s']:.0f}s; written to {out}")
    return rec

if __name__ == '__main__': main()
