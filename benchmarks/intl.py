"""INTL benchmark: the loss forward+backward (Gram-block path vs the straightforward reference that materialises the
whitened views) at each thread count asked for, LAPACK's eigh at one thread and at n threads, the Gram blocks in stripes
against one product, and with --full the batched augmentation and the training throughput of the CPU replication
configuration.

What is timed is the loss forward and backward on two leaf tensors (`loss_step`), nothing else (runs before 2026-12-05
also timed copying the inputs and casting loss and gradients to float64, which lowered every ratio). Loss speeds are
wall-time ratios measured in this one run from interleaved repeats (process CPU-time ratios beside them): every round
runs every thread count, shape and implementation once, so load from other processes hits all of them alike. Reported:
the median of the per-round ratios and their spread (min, 10th and 90th percentiles, max). The JSON records the load
average before and after and the machine's load from `machine.MachineLoad` (`machine_load`: other processes' share of
the CPU before and during the run; `quiet` when each share is under 10 %). Before timing, `solver='auto'` and the
stripe size of the Gram blocks (`_gram_block`) are recalibrated at each thread count (their measurements are stored in
the JSON). Writes results/intl/bench_loss_threads.json (or --out) and prints tables.

Usage: OMP_WAIT_POLICY=PASSIVE python benchmarks/intl.py --threads 1,2 [--repeats 15] [--quick] [--full] [--out PATH]
"""
from __future__ import annotations
import argparse, importlib, json, os, statistics, time
from pathlib import Path

os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import torch

from reprbook.core import atomic_write, environment_info, markdown_table, results_dir
from machine import MachineLoad, peak_rss_mb
from reprbook.intl import spectral
from reprbook.intl.spectral import intl_loss, resolve_solver, calibrate_solver

SIZES = [(256, 2048), (256, 512), (128, 8192)]
GOALS = {(256, 2048): 1.8, (256, 512): 1.3, (128, 8192): 2.5}       # speed-up over the reference loss
TOL = 1e-5                                                          # loss and gradients identical to this (relative)

def timed(fn) -> float:
    t = time.perf_counter(); fn(); return time.perf_counter() - t

def timed2(fn) -> tuple[float, float]:
    "Wall and process CPU time of fn() (CPU time is what time-slicing by other processes does not inflate)."
    t, c = time.perf_counter(), time.process_time(); fn(); return time.perf_counter() - t, time.process_time() - c

def quantile(xs, q):
    xs = sorted(xs); i = q * (len(xs) - 1); lo = int(i)
    return xs[lo] if lo + 1 >= len(xs) else xs[lo] + (i - lo) * (xs[lo + 1] - xs[lo])

def spread(xs) -> dict:
    return {'median': statistics.median(xs), 'min': min(xs), 'p10': quantile(xs, 0.1), 'p90': quantile(xs, 0.9),
            'max': max(xs)}

def views(m, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, d, generator=g), torch.randn(m, d, generator=g)

def run_loss(z1, z2, impl, solver='auto', dtype=torch.float32):
    a, b = (z.to(dtype).clone().requires_grad_() for z in (z1, z2))
    loss = intl_loss(a, b, impl=impl, solver=solver, whiten_dtype=dtype); loss.backward()
    return loss.detach().double(), a.grad.double(), b.grad.double()

def loss_step(a, b, impl, solver):
    "What is timed: the loss forward and backward on two leaf tensors, as in a training step (no copies, no casts)."
    intl_loss(a, b, impl=impl, solver=solver).backward()

def agreement(x, ref) -> dict:
    "Relative loss difference and largest gradient difference relative to the largest reference gradient entry."
    (l1, g1, h1), (l0, g0, h0) = x, ref
    scale = max(g0.abs().max().item(), h0.abs().max().item())
    return {'loss_rel_diff': abs(l1 - l0).item() / abs(l0).item(),
            'grad_rel_diff': max((g1 - g0).abs().max().item(), (h1 - h0).abs().max().item()) / scale}

def loss_benchmark(threads: list[int], sizes, repeats: int) -> dict:
    data = {s: views(*s) for s in sizes}
    out = {'calibration': {}, 'agreement': {}, 'times_ms': {}, 'ratios': {}, 'cpu_ratios': {}}
    for n in threads:                                               # 1. calibrate 'auto' afresh at every thread count
        torch.set_num_threads(n)
        for m, d in sizes:
            key = spectral._calibration_key(m, 2, 4, torch.float32, torch.device('cpu'))
            spectral._load_calibration()
            spectral._CALIBRATION[key] = calibrate_solver(m)
            out['calibration'][f'{n}|{m}'] = dict(spectral._CALIBRATION[key], solver_auto=resolve_solver('auto', m))
            gkey = spectral._calibration_key(m, d, 0, torch.float32, torch.device('cpu'), what='sym_gram')
            spectral._CALIBRATION[gkey] = spectral.calibrate_gram_block(m, d)
            out['calibration'][f'{n}|{m}x{d}|gram_block'] = spectral._CALIBRATION[gkey]
        spectral._save_calibration()
    torch.set_num_threads(threads[0])
    for m, d in sizes:                                              # 2. values and gradients against the reference
        z1, z2 = data[m, d]                                         #    and against float64
        exact, ref = run_loss(z1, z2, 'reference', dtype=torch.float64), run_loss(z1, z2, 'reference')
        row = {'reference_vs_float64': agreement(ref, exact)}
        for s in ('eigh', 'ns'):
            x = run_loss(z1, z2, 'gram', s)
            row[f'gram_{s}_vs_reference'] = agreement(x, ref); row[f'gram_{s}_vs_float64'] = agreement(x, exact)
        out['agreement'][f'{m}x{d}'] = row
    variants = {'auto': ('gram', 'auto'), 'eigh': ('gram', 'eigh'), 'ns': ('gram', 'ns'),
                'reference': ('reference', 'auto')}
    times = {(n, s, k): [] for n in threads for s in sizes for k in variants}
    cpu = {key: [] for key in times}
    leaves = {s: [z.clone().requires_grad_() for z in data[s]] for s in sizes}
    for r in range(repeats + 1):                                    # 3. interleaved rounds; round 0 warms up
        for n in (threads if r % 2 else threads[::-1]):
            torch.set_num_threads(n)
            for s in sizes:
                for k, (impl, solver) in variants.items():
                    for z in leaves[s]: z.grad = None
                    dt, dc = timed2(lambda: loss_step(*leaves[s], impl, solver))
                    if r: times[n, s, k].append(dt); cpu[n, s, k].append(dc)
    for n in threads:
        for m, d in sizes:
            ref = times[n, (m, d), 'reference']
            tag = f'{n}|{m}x{d}'
            out['times_ms'][tag] = {k: 1e3 * statistics.median(times[n, (m, d), k]) for k in variants}
            out['ratios'][tag] = {k: spread([a / b for a, b in zip(ref, times[n, (m, d), k])])
                                  for k in ('auto', 'eigh', 'ns')}
            cref = cpu[n, (m, d), 'reference']
            out['cpu_ratios'][tag] = {k: spread([a / b for a, b in zip(cref, cpu[n, (m, d), k])])
                                      for k in ('auto', 'eigh', 'ns')}
    torch.set_num_threads(threads[0])
    return out

def gram_blocks(threads: list[int], sizes, blocks=(16, 32, 64, 128), repeats: int = 15) -> dict:
    "`_sym_gram` of one view's (m, d) batch by stripe size against one full product (block >= m), interleaved."
    res = {}
    for m, d in sizes:
        x = views(m, d)[0]; out = torch.empty(m, m)
        cand = {b: b for b in blocks if b < m} | {'one product': m}
        for n in threads:
            ts = {b: [] for b in cand}
            torch.set_num_threads(n)
            for r in range(repeats + 1):
                for b, blk in cand.items():
                    dt = timed(lambda: spectral._sym_gram(x, out, blk))
                    if r: ts[b].append(dt)
            full = ts['one product']
            res[f'{n}|{m}x{d}'] = {str(b): {'ms': 1e3 * statistics.median(t),
                                            'speedup_vs_one_product': statistics.median([a / c for a, c in zip(full, t)])}
                                   for b, t in ts.items()}
    torch.set_num_threads(threads[0])
    return res

def eigh_threads(threads: list[int], ms=(128, 256, 512), repeats: int = 7) -> dict:
    "LAPACK eigh of a (2, m, m) batch at n threads against one thread (what `_eigh_forward` uses), interleaved."
    res = {}
    for n in threads:
        if n == 1: continue
        for m in ms:
            B = torch.randn(2, m, m, generator=torch.Generator().manual_seed(m)); S = B @ B.mT / m
            t1, tn = [], []
            for _ in range(repeats):
                torch.set_num_threads(n); tn.append(timed(lambda: torch.linalg.eigh(S)))
                torch.set_num_threads(1); t1.append(timed(lambda: torch.linalg.eigh(S)))
            res[f'{n}|{m}'] = {'ms_at_n_threads': 1e3 * statistics.median(tn),
                               'ms_at_1_thread': 1e3 * statistics.median(t1),
                               'slowdown_at_n': spread([a / b for a, b in zip(tn, t1)])}
    torch.set_num_threads(threads[0])
    return res

def _find(name: str):
    "An INTL harness object by name, wherever the chapter's modules keep it (the harness is being split into modules)."
    for mod in ('data', 'methods', 'train', 'experiments', 'ssl', 'reproduce'):
        try: m = importlib.import_module(f'reprbook.intl.{mod}')
        except ImportError: continue
        if hasattr(m, name): return getattr(m, name)
    raise ImportError(f'reprbook.intl has no {name}')

def train_throughput(method: str, steps: int, train_x: torch.Tensor) -> dict:
    cfg = _find('replication_config')(method)
    model, opt, sched, _ = _find('build')(cfg, len(train_x))
    aug = _find('TensorAugment')(_find('cifar_views')(cfg.img_size))
    def step(i):
        idx = torch.randint(0, len(train_x), (cfg.batch_size,), generator=torch.Generator().manual_seed(i))
        views_ = aug(train_x[idx], torch.Generator().manual_seed(i))
        loss, _ = model.method(model.method.encode(model.net, views_))
        opt.zero_grad(); loss.backward(); opt.step()
    step(0)  # warm-up
    ts = [timed(lambda: step(i + 1)) for i in range(steps)]
    return {'method': method, 'img_size': cfg.img_size, 'width': cfg.width, 'batch': cfg.batch_size,
            'step_s_median': statistics.median(ts), 'images_per_s': cfg.batch_size / statistics.median(ts),
            'steps': steps}

def aug_throughput(x: torch.Tensor, repeats: int) -> dict:
    from PIL import Image
    cifar_views, torchvision_pipeline = _find('cifar_views'), _find('torchvision_pipeline')
    vs = cifar_views(32)
    tensor_aug = _find('TensorAugment')(vs)
    pipes = [torchvision_pipeline(v) for v in vs]
    def tensor_run(): tensor_aug(x, torch.Generator().manual_seed(0))
    def pil_run():  # the usual Dataset path: uint8 array -> PIL image -> two transformed views
        for im in x.numpy():
            pim = Image.fromarray(im); [p(pim) for p in pipes]
    tt, tp = [], []
    for _ in range(repeats):
        tt.append(timed(tensor_run)); tp.append(timed(pil_run))
    n = len(x)
    out = {'images': n, 'views': 2, 'tensor_images_per_s': n / statistics.median(tt),
           'pil_images_per_s': n / statistics.median(tp)}
    out['speedup_vs_pil'] = out['tensor_images_per_s'] / out['pil_images_per_s']
    return out

def loss_table(rec) -> list[dict]:
    rows = []
    for tag, r in rec['loss']['ratios'].items():
        n, shape = tag.split('|'); m, d = map(int, shape.split('x'))
        t, a = rec['loss']['times_ms'][tag], rec['loss']['agreement'][shape]
        auto = rec['loss']['calibration'][f'{n}|{m}']['solver_auto']
        g = r['auto']
        block = rec['loss']['calibration'].get(f'{n}|{shape}|gram_block', {}).get('block')
        rows.append({'threads': int(n), 'm x d': shape, 'auto solver': auto, 'gram block': block, 'auto ms': t['auto'],
                     'reference ms': t['reference'],
                     'speed-up (median)': g['median'], 'p10-p90': f"{g['p10']:.2f}-{g['p90']:.2f}",
                     'min-max': f"{g['min']:.2f}-{g['max']:.2f}",
                     'CPU-time ratio': rec['loss']['cpu_ratios'][tag]['auto']['median'],
                     'eigh': r['eigh']['median'], 'ns': r['ns']['median'],
                     'goal': GOALS.get((m, d)), 'met': g['median'] >= GOALS.get((m, d), 0),
                     'grad diff': a[f'gram_{auto}_vs_reference']['grad_rel_diff'],
                     'loss diff': a[f'gram_{auto}_vs_reference']['loss_rel_diff']})
    return rows

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--threads', default='1,2', help='comma-separated thread counts, e.g. 1,2')
    ap.add_argument('--repeats', type=int, default=15, help='interleaved timing rounds')
    ap.add_argument('--quick', action='store_true', help='small sizes and few repeats (a smoke test of the script)')
    ap.add_argument('--full', action='store_true', help='also augmentation and training throughput (1st thread count)')
    ap.add_argument('--train-steps', type=int, default=8)
    ap.add_argument('--out', default=None)
    a = ap.parse_args(argv)
    threads = [int(t) for t in a.threads.split(',')]
    sizes, repeats = ([(64, 256), (32, 512)], 3) if a.quick else (SIZES, a.repeats)
    if a.quick: GOALS.update({(64, 256): 0, (32, 512): 0})
    t_start = time.perf_counter()
    rec = {'threads': threads, 'repeats': repeats, 'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY'),
           'environment': environment_info(), 'started': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
           'goals': {f'{m}x{d}': g for (m, d), g in GOALS.items()}, 'tolerance': TOL}
    rec['load_average_before'] = os.getloadavg()
    load = MachineLoad()                                            # other processes' CPU before and during the run
    rec['loss'] = loss_benchmark(threads, sizes, repeats)
    rec['gram_blocks'] = gram_blocks(threads, sizes, repeats=3 if a.quick else 15)
    rec['eigh_threads'] = eigh_threads(threads, (64, 128) if a.quick else (128, 256, 512), 3 if a.quick else 7)
    rec['table'] = loss_table(rec)
    rec['all_goals_met'] = all(r['met'] for r in rec['table'])
    rec['identical_to_tol'] = all(r['grad diff'] <= TOL and r['loss diff'] <= TOL for r in rec['table'])
    if a.full:
        torch.set_num_threads(threads[0])
        x = _find('load_cifar10_sample')('train').x if a.quick else _find('load_cifar10')('train', per_class=100).x
        rec['augmentation'] = aug_throughput(x[:200] if a.quick else x[:1000], 1 if a.quick else 3)
        steps = 2 if a.quick else a.train_steps
        rec['training'] = [train_throughput(m, steps, x) for m in ('intl', 'barlow', 'vicreg')]
    rec['load_average_after'] = os.getloadavg()
    rec['peak_rss_mb'] = peak_rss_mb(); rec['total_s'] = time.perf_counter() - t_start
    ml = load.record(); during = ml['others_cpu_share_during']
    rec['machine_load'] = {**ml, 'other_cpu_share': during['normal'] + during['niced'], 'cpus': ml['cpu_count']}
    out = Path(a.out) if a.out else results_dir('intl')/('bench_quick.json' if a.quick else 'bench_loss_threads.json')
    with atomic_write(out, 'w') as f: json.dump(rec, f, indent=1)
    print(markdown_table(rec['table'], floatfmt='.3g'))
    print(markdown_table([{'threads:m': k, 'eigh ms at n threads': v['ms_at_n_threads'],
                           'at 1 thread': v['ms_at_1_thread']} for k, v in rec['eigh_threads'].items()],
                         floatfmt=".3g"))
    print(markdown_table([{'threads|m x d': k, **{f'block {b} ms': v[b]['ms'] for b in v}}
                          for k, v in rec['gram_blocks'].items()], floatfmt='.3g'))
    for k in ('augmentation', 'training'):
        if k in rec: print(k, rec[k])
    print(rec['machine_load']['sentence'])
    print(f"all goals met: {rec['all_goals_met']}; identical to {TOL}: {rec['identical_to_tol']}; "
          f"total {rec['total_s']:.0f}s; written to {out}")
    return rec

if __name__ == '__main__': main()
