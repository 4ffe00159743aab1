"""Rot-Pro speed benchmark on FB15k-237 (dim 200, batch 512, 128 negatives): training steps/s of the official step
(faithful transcription: per-triple numpy sampler, official forward with stack-norm, official loss) against this library's
fast step (vectorised sampler, fused scorer, eager and torch.compile), interleaved repeats, medians and ratios; filtered
evaluation queries/s (the official per-query filtering on a small subset vs the library on the whole test set, both
directions); peak memory per mode (each in a fresh subprocess). Writes results/rotpro/bench.json and prints a table.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/rotpro.py [--threads 1] [--repeats 5] [--eval-full] [--no-compile]
"""
import argparse, json, os, resource, statistics, subprocess, sys, time
from pathlib import Path

import numpy as np
import torch

from reprbook.core import environment_info, results_dir, markdown_table, save_results
from reprbook.rotpro.data import load_kg, KGEBatches, FilterIndex, subsampling_weights
from reprbook.rotpro.train import KGEConfig, build_model, kge_step_fn, rank_queries, ranking_metrics
from reprbook.rotpro.reference import official_loss, official_forward, OfficialSampler

CFG = dict(dim=200, batch=512, negatives=128, gamma=9.0, adv_temperature=1.0, lr=1e-4, alpha=5e-4, gamma_m=1e-6, beta=1.5)


def make(kg, mode_name, seed=0):
    cfg = KGEConfig(model='rotpro', seed=seed, compile=(mode_name == 'compiled'), **CFG)
    model = build_model(cfg, kg.n_entities, kg.n_relations)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    return cfg, model, opt


class OfficialStep:
    "One official training step: per-triple numpy negatives for the batch, official forward + loss, backward, Adam."
    def __init__(self, kg, seed=0):
        self.cfg, self.model, self.opt = make(kg, 'official', seed)
        self.sampler = OfficialSampler(kg.train, kg.n_entities, self.cfg.negatives, seed)
        self.weight = subsampling_weights(kg.train)
        self.train, self.rng, self.i = kg.train, np.random.RandomState(seed), 0
    def __call__(self):
        mode = ('tail', 'head')[self.i % 2]; self.i += 1
        idx = torch.from_numpy(self.rng.randint(len(self.train), size=self.cfg.batch))
        pos = self.train[idx]
        neg = self.sampler.sample(pos, mode)
        loss = official_loss(self.model, pos, neg, mode, self.weight[idx], self.cfg)
        self.opt.zero_grad(); loss.backward(); self.opt.step()
        return loss.item()


class FastStep:
    "One library training step: vectorised sampler (alternating directions), fused scorer, kge_loss + penalty, backward, Adam."
    def __init__(self, kg, mode_name='fast', seed=0):
        self.cfg, self.model, self.opt = make(kg, mode_name, seed)
        self.batches = iter(KGEBatches(kg.train, kg.n_entities, kg.n_relations, self.cfg.batch, self.cfg.negatives, seed)(0))
        self.step = kge_step_fn(self.cfg)
    def __call__(self):
        batch = next(self.batches)
        loss, _ = self.step(self.model, batch)
        self.opt.zero_grad(); loss.backward(); self.opt.step()
        return loss.item()


def timed(fn, cpu=None):
    t0, c0 = time.perf_counter(), time.process_time(); fn()
    if cpu is not None: cpu.append(time.process_time() - c0)
    return time.perf_counter() - t0


def vm_hwm_mb():
    "Peak resident memory of this process (VmHWM; unlike ru_maxrss it is not inherited across exec)."
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmHWM:'): return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def official_eval(model, kg, triples, mode, known):
    "The official test_step for a few queries: Python filtering over every entity, official forward, argsort rank."
    ranks = []
    E = kg.n_entities
    for h, r, t in triples.tolist():
        if mode == 'head':
            tmp = [(0, c) if (c, r, t) not in known else (-1, h) for c in range(E)]; tmp[h] = (0, h)
        else:
            tmp = [(0, c) if (h, r, c) not in known else (-1, t) for c in range(E)]; tmp[t] = (0, t)
        bias = torch.tensor([x[0] for x in tmp], dtype=torch.float32)[None]
        cand = torch.tensor([x[1] for x in tmp])[None]
        with torch.no_grad():
            s = official_forward(model, torch.tensor([[h, r, t]]), cand, f'{mode}-batch') + bias
        order = torch.argsort(s, dim=1, descending=True)
        ranks.append(int((order[0] == (t if mode == 'tail' else h)).nonzero()[0, 0]) + 1)
    return ranks


def memory_child(mode_name, threads):
    "Run in a fresh process: 3 training steps of one mode, print peak RSS in MB."
    torch.set_num_threads(threads)
    kg = load_kg('FB15k-237')
    base = vm_hwm_mb()
    step = OfficialStep(kg) if mode_name == 'official' else FastStep(kg, mode_name)
    for _ in range(3): step()
    print(json.dumps({'mode': mode_name, 'peak_rss_mb': vm_hwm_mb(), 'peak_rss_after_data_mb': base}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--no-compile', action='store_true')
    ap.add_argument('--eval-full', action='store_true', help='evaluate the whole FB15k-237 test set (both directions)')
    ap.add_argument('--official-eval-queries', type=int, default=10)
    ap.add_argument('--eval-threads', type=int, default=None, help='torch threads for the evaluation part (default: --threads)')
    ap.add_argument('--memory-child', default=None)
    ap.add_argument('--out', default=None)
    a = ap.parse_args()
    if a.memory_child: return memory_child(a.memory_child, a.threads)
    torch.set_num_threads(a.threads)
    kg = load_kg('FB15k-237')
    modes = ['official', 'fast'] + ([] if a.no_compile else ['compiled'])
    steps = {'official': OfficialStep(kg), 'fast': FastStep(kg), **({} if a.no_compile else {'compiled': FastStep(kg, 'compiled')})}
    warm = {}
    for m in modes:   # warm-up (compilation for 'compiled': the first call of each direction, and the partial-batch shapes do not occur here)
        warm[m] = timed(steps[m]) + timed(steps[m])
    times, cpu = {m: [] for m in modes}, {m: [] for m in modes}
    for rep in range(a.repeats):
        for m in (modes if rep % 2 == 0 else modes[::-1]):   # interleaved, order alternating
            times[m].append(timed(steps[m], cpu[m]))
        print(f'repeat {rep + 1}/{a.repeats}: ' + ', '.join(f'{m} {times[m][-1]:.3f}s' for m in modes), flush=True)
    med = {m: statistics.median(v) for m, v in times.items()}
    cmed = {m: statistics.median(v) for m, v in cpu.items()}
    train = {m: {'median_step_s': med[m], 'steps_per_s': 1 / med[m], 'all_s': times[m], 'warmup_2_steps_s': warm[m],
                 'speedup_vs_official': med['official'] / med[m], 'median_step_cpu_s': cmed[m], 'all_cpu_s': cpu[m],
                 'cpu_speedup_vs_official': cmed['official'] / cmed[m]} for m in modes}
    mem = {}
    for m in modes:
        r = subprocess.run([sys.executable, __file__, '--memory-child', m, '--threads', str(a.threads)], capture_output=True, text=True)
        if r.returncode == 0: mem[m] = json.loads(r.stdout.strip().splitlines()[-1])
        else: mem[m] = {'error': r.stderr[-500:]}
    # evaluation: the official per-query filtering on a few queries, the library on the whole test set
    model = steps['fast'].model.eval()
    if a.eval_threads: torch.set_num_threads(a.eval_threads)
    known = set(map(tuple, kg.known_triples().tolist()))
    n_off = a.official_eval_queries
    t0, c0 = time.perf_counter(), time.process_time()
    for mode in ('tail', 'head'): official_eval(model, kg, kg.test[:n_off // 2], mode, known)
    off_qps, off_cpu_qps = 2 * (n_off // 2) / (time.perf_counter() - t0), 2 * (n_off // 2) / (time.process_time() - c0)
    index = kg.filter_index()
    triples = kg.test if a.eval_full else kg.test[torch.randperm(len(kg.test), generator=torch.Generator().manual_seed(0))[:2000]]
    t0, c0 = time.perf_counter(), time.process_time()
    ranks = [rank_queries(model, triples, mode, index) for mode in ('tail', 'head')]
    dt, dcpu = time.perf_counter() - t0, time.process_time() - c0
    n_q = 2 * len(triples)
    ev = {'official_queries_per_s': off_qps, 'official_queries_timed': 2 * (n_off // 2),
          'library_queries_per_s': n_q / dt, 'library_queries': n_q, 'library_time_s': dt, 'full_test': bool(a.eval_full),
          'full_test_time_estimate_s': 2 * len(kg.test) / (n_q / dt), 'official_full_test_estimate_h': 2 * len(kg.test) / off_qps / 3600,
          'speedup_vs_official': (n_q / dt) / off_qps, 'library_cpu_s': dcpu, 'library_queries_per_cpu_s': n_q / dcpu,
          'full_test_cpu_estimate_s': 2 * len(kg.test) * dcpu / n_q, 'official_queries_per_cpu_s': off_cpu_qps}
    rows = [{'path': m, 'step_s (median)': round(med[m], 3), 'steps/s': round(1 / med[m], 2), 'speedup': round(med['official'] / med[m], 2),
             'CPU s/step (median)': round(cmed[m], 3), 'CPU speedup': round(cmed['official'] / cmed[m], 2),
             'peak RSS MB': round(mem[m].get('peak_rss_mb', float('nan')), 0)} for m in modes]
    proto = (f"FB15k-237, Rot-Pro, dim {CFG['dim']}, batch {CFG['batch']}, {CFG['negatives']} negatives, {a.threads} torch thread(s), "
             f"{a.repeats} interleaved repeats (median); evaluation ({torch.get_num_threads()} thread(s)): filtered, both directions, "
             f"{'whole test set' if a.eval_full else f'{n_q} queries'} (library) vs {2 * (n_off // 2)} queries (official per-query filtering).")
    ev['threads'] = torch.get_num_threads()
    out = save_results('rotpro', 'bench', {'train': train, 'eval': ev, 'memory': mem}, config={**CFG, 'threads': a.threads, 'eval_threads': ev['threads']},
                       protocol=proto, table=rows, root=a.out)
    print(markdown_table(rows))
    print(f"evaluation: official {off_qps:.2f} queries/s (full test ≈ {ev['official_full_test_estimate_h']:.1f} h); library "
          f"{n_q / dt:.1f} queries/s ({n_q} queries in {dt:.0f} s, {dcpu:.0f} CPU s; full test ≈ {ev['full_test_time_estimate_s'] / 60:.1f} min wall, "
          f"{ev['full_test_cpu_estimate_s'] / 60:.1f} CPU min); "
          f"speed-up {ev['speedup_vs_official']:.0f}x")
    print('wrote', out)


if __name__ == '__main__':
    main()
