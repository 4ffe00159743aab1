"""FlexMol data benchmark: featurisation, shortest paths + path edges vs Graphormer's algorithm, conformers, model step.

Run:  OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE REPRBOOK_DATA=../shared/data nice -n 10 python benchmarks/flexmol.py [--quick]
      OMP_WAIT_POLICY=PASSIVE python benchmarks/flexmol.py --train [--threads 2]   (pre-training throughput, bench_train.json)
      OMP_WAIT_POLICY=PASSIVE python benchmarks/flexmol.py --finetune [--threads 2] (fine-tuning and prediction, bench_finetune.json)
--train and --finetune record the machine's load (load average before the run, CPU time other processes used just before
and during it); run them on a quiet machine (other jobs paused) for wall-clock figures.
Writes results/flexmol/bench.json (+ .md) and prints a table. Speeds are molecules per CPU-second of this process on one
thread (time.process_time, robust to other jobs on a shared machine), except conformers, which run in a worker process and
are timed by wall clock. Ratios are measured in one run from interleaved repeats (median of the repeats).
"""
from __future__ import annotations
import argparse, math, os, statistics, sys, time
from collections import Counter

import numpy as np
import pandas as pd
import scipy.sparse, scipy.sparse.csgraph
import torch
from rdkit import Chem

from reprbook.core import markdown_table, save_results
from machine import MachineLoad, peak_rss_mb
from reprbook.flexmol import conformers as _C, datasets as _DS, featurize as D

UNREACHABLE = 510  # Graphormer's UNREACHABLE_NODE_DISTANCE


# ---------------------------------------------------------------------------------------------------------------
# Graphormer's preprocessing (microsoft/Graphormer, graphormer/data/algos.pyx), ported line by line to pure Python.
# The original is Cython with typed loops; an earlier measurement gave ~400 molecules/s for it on these machines (not rerun here:
# no Cython build). Plain Python lists are used for the O(n^3) loop, the fastest pure-Python form of the same algorithm.
# ---------------------------------------------------------------------------------------------------------------
def graphormer_floyd_warshall(adjacency: np.ndarray):
    n = adjacency.shape[0]
    M = adjacency.astype(np.int64).tolist()
    path = [[-1] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if i == j: M[i][j] = 0
            elif M[i][j] == 0: M[i][j] = UNREACHABLE
    for k in range(n):
        Mk = M[k]
        for i in range(n):
            Mi, pi = M[i], path[i]
            M_ik = Mi[k]
            for j in range(n):
                cost_ikkj = M_ik + Mk[j]
                if Mi[j] > cost_ikkj:
                    Mi[j] = cost_ikkj
                    pi[j] = k
    for i in range(n):
        for j in range(n):
            if M[i][j] >= UNREACHABLE:
                path[i][j] = UNREACHABLE
                M[i][j] = UNREACHABLE
    return np.array(M, dtype=np.int64), path


def graphormer_get_all_edges(path, i, j):
    k = path[i][j]
    if k == -1: return []
    return graphormer_get_all_edges(path, i, k) + [k] + graphormer_get_all_edges(path, k, j)


def graphormer_gen_edge_input(max_dist, path, edge_feat: np.ndarray):
    n = len(path)
    edge_fea_all = -1 * np.ones([n, n, max_dist, edge_feat.shape[-1]], dtype=np.int64)
    for i in range(n):
        for j in range(n):
            if i == j: continue
            if path[i][j] == UNREACHABLE: continue
            p = [i] + graphormer_get_all_edges(path, i, j) + [j]
            for k in range(len(p) - 1):
                edge_fea_all[i, j, k, :] = edge_feat[p[k], p[k + 1], :]
    return edge_fea_all


def graphormer_preprocess(edge_index: np.ndarray, edge_attr: np.ndarray, n: int, h_max: int = D.H_MAX):
    "SPD and path-edge features as Graphormer's `preprocess_item` + collator computes them (edge features +1, truncated to h_max)."
    adj = np.zeros((n, n), dtype=bool)
    adj[edge_index[0], edge_index[1]] = True
    attn_edge_type = np.zeros((n, n, edge_attr.shape[1]), dtype=np.int64)
    attn_edge_type[edge_index[0], edge_index[1]] = edge_attr + 1
    spd, path = graphormer_floyd_warshall(adj)
    max_dist = int(np.amax(spd))  # as Graphormer: includes 510 for disconnected graphs (none here: largest fragment kept)
    edge_input = graphormer_gen_edge_input(max_dist, path, attn_edge_type)
    return spd, edge_input[:, :, :h_max]


# ---------------------------------------------------------------------------------------------------------------
def sample_smiles(n: int, seed: int = 0) -> list[str]:
    "A fixed mix of drug-like molecules: n/3 each from BBBP, Tox21 and HIV (seeded), parseable ones only."
    out = []
    rng = np.random.default_rng(seed)
    for key in ['bbbp', 'tox21', 'hiv']:
        s = pd.read_csv(_DS.moleculenet_path(key)).iloc[:, 0].tolist()
        for i in rng.permutation(len(s)):
            if len([x for x in out if x[0] == key]) >= n // 3: break
            if D.prepare_molecule(s[i])[0] is not None: out.append((key, s[i]))
    return [s for _, s in out]


def timed(fn, *a):
    "CPU time of this process (single-threaded work), so that other jobs on a shared machine do not distort the ratios."
    t0 = time.process_time(); r = fn(*a); return time.process_time() - t0, r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--quick', action='store_true', help='small sizes (CI sanity run)')
    ap.add_argument('--n-feat', type=int, default=3000)
    ap.add_argument('--n-baseline', type=int, default=300)
    ap.add_argument('--n-conf', type=int, default=300)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--out', default='bench')
    args = ap.parse_args(argv)
    if args.quick: args.n_feat, args.n_baseline, args.n_conf, args.repeats = 300, 60, 30, 2
    torch.set_num_threads(1)
    rows, metrics, notes = [], {}, []

    smiles = sample_smiles(args.n_feat)
    graphs = [D.mol_to_graph(s, pair_features=False) for s in smiles]
    sizes = np.array([g.num_nodes for g in graphs])
    ei = [g.edge_index.numpy() for g in graphs]; ea = [g.edge_attr.numpy() for g in graphs]
    print(f'{len(smiles)} molecules (BBBP/Tox21/HIV mix), heavy atoms mean {sizes.mean():.1f}, max {sizes.max()}', flush=True)

    # --- correctness: distances identical to scipy; our path edges valid; agreement with Graphormer ---------------
    base_idx = list(range(0, len(graphs), max(1, len(graphs) // args.n_baseline)))[:args.n_baseline]
    ours = D.pair_features_list(ei, ea, sizes)
    n_pairs = n_equal_paths = n_cmp_paths = 0
    for k, g in enumerate(graphs):
        n = int(sizes[k])
        A = scipy.sparse.csr_matrix((np.ones(ei[k].shape[1]), ei[k]), shape=(n, n))
        ref = scipy.sparse.csgraph.shortest_path(A, unweighted=True)
        ref = np.where(np.isinf(ref), D.MAX_SPD + 1, np.minimum(ref, D.MAX_SPD)).astype(np.int64)
        assert (ours[k][0] == ref).all(), f'SPD differs from scipy for {smiles[k]}'
        n_pairs += n * n
    for k in base_idx:
        n = int(sizes[k])
        spd_g, edge_g = graphormer_preprocess(ei[k], ea[k], n)
        spd_g = np.where(spd_g >= UNREACHABLE, D.MAX_SPD + 1, np.minimum(spd_g, D.MAX_SPD))
        assert (spd_g == ours[k][0]).all(), f'SPD differs from the Graphormer port for {smiles[k]}'
        plen = ours[k][2]
        h = edge_g.shape[2]
        ours_shift = np.where(np.arange(D.H_MAX)[None, None, :, None] < plen[..., None, None], ours[k][1] + 1, -1)[:, :, :h]
        reach = (plen > 0)
        n_cmp_paths += int(reach.sum())
        n_equal_paths += int((ours_shift == edge_g).all(axis=(-1, -2))[reach].sum())
    metrics['spd_identical_to_scipy_pairs'] = n_pairs
    metrics['path_edges_equal_to_graphormer_frac'] = n_equal_paths / max(n_cmp_paths, 1)
    notes.append(f'SPD identical to scipy.sparse.csgraph.shortest_path on all {n_pairs} atom pairs of {len(graphs)} molecules, and to the '
                 f'Graphormer port on {len(base_idx)} molecules. Path-edge features equal Graphormer\'s on '
                 f'{100 * metrics["path_edges_equal_to_graphormer_frac"]:.1f}% of {n_cmp_paths} reachable pairs; the rest are pairs with '
                 'several shortest paths, where the two methods pick different (equally short) paths.')

    # --- speed: pair features (SPD + 5-hop path edges), interleaved repeats on the same molecules ------------------
    sub = [ei[k] for k in base_idx], [ea[k] for k in base_idx], sizes[base_idx]
    t_base, t_ours_1, t_ours_b = [], [], []
    for r in range(args.repeats):
        t_base.append(timed(lambda: [graphormer_preprocess(sub[0][k], sub[1][k], int(sub[2][k])) for k in range(len(base_idx))])[0])
        t_ours_1.append(timed(lambda: [D.pair_features([sub[0][k]], [sub[1][k]], [int(sub[2][k])]) for k in range(len(base_idx))])[0])
        t_ours_b.append(timed(lambda: D.pair_features_list(*sub))[0])
    nb = len(base_idx)
    med = lambda t: statistics.median(t)
    metrics['pairs_graphormer_python_mol_s'] = nb / med(t_base)
    metrics['pairs_bfs_single_mol_s'] = nb / med(t_ours_1)
    metrics['pairs_bfs_bucketed_mol_s'] = nb / med(t_ours_b)
    metrics['speedup_bucketed_vs_graphormer_python'] = med(t_base) / med(t_ours_b)
    metrics['speedup_single_vs_graphormer_python'] = med(t_base) / med(t_ours_1)
    metrics['speedup_bucketed_vs_graphormer_cython_400'] = metrics['pairs_bfs_bucketed_mol_s'] / 400.0

    # larger-scale throughput on all molecules
    t_all = [timed(D.pair_features_list, ei, ea, sizes)[0] for _ in range(args.repeats)]
    metrics['pairs_bfs_bucketed_mol_s_all'] = len(graphs) / med(t_all)
    # full featurisation: SMILES -> OGB graph + SPD + path edges (LRU cache cleared, so RDKit work is included)
    def full_feat():
        D._cached_graph.cache_clear()
        return [D.mol_to_graph(s) for s in smiles]
    t_full = [timed(full_feat)[0] for _ in range(args.repeats)]
    metrics['featurise_full_mol_s'] = len(smiles) / med(t_full)
    def graphs_then_pairs():
        D._cached_graph.cache_clear()
        gs = [D.mol_to_graph(s, pair_features=False) for s in smiles]
        return D.pair_features_list([g.edge_index.numpy() for g in gs], [g.edge_attr.numpy() for g in gs], [g.num_nodes for g in gs])
    t_gp = [timed(graphs_then_pairs)[0] for _ in range(args.repeats)]
    metrics['featurise_graph_plus_bucketed_pairs_mol_s'] = len(smiles) / med(t_gp)
    # the per-batch hot path of training: collate 64 stored graphs into dense tensors (pairs computed there)
    t_col = [timed(lambda: [D.collate_molecules(graphs[i:i + 64]) for i in range(0, len(graphs), 64)])[0] for _ in range(args.repeats)]
    metrics['collate_dense_batch64_mol_s'] = len(graphs) / med(t_col)

    rows += [dict(stage='SPD + 5-hop path edges, Graphormer algorithm (pure Python port)', molecules=nb, mol_per_s=metrics['pairs_graphormer_python_mol_s']),
             dict(stage='SPD + 5-hop path edges, batched BFS, one molecule per call', molecules=nb, mol_per_s=metrics['pairs_bfs_single_mol_s']),
             dict(stage='SPD + 5-hop path edges, batched BFS, size buckets of 16', molecules=nb, mol_per_s=metrics['pairs_bfs_bucketed_mol_s']),
             dict(stage='  same, all molecules', molecules=len(graphs), mol_per_s=metrics['pairs_bfs_bucketed_mol_s_all']),
             dict(stage='SMILES -> graph + SPD + path edges (mol_to_graph, uncached)', molecules=len(smiles), mol_per_s=metrics['featurise_full_mol_s']),
             dict(stage='SMILES -> graph, then bucketed pair features', molecules=len(smiles), mol_per_s=metrics['featurise_graph_plus_bucketed_pairs_mol_s']),
             dict(stage='collate_molecules, batches of 64 (dense tensors incl. pairs)', molecules=len(graphs), mol_per_s=metrics['collate_dense_batch64_mol_s'])]
    print(f"speed-up of batched BFS over the Graphormer algorithm in pure Python: {metrics['speedup_bucketed_vs_graphormer_python']:.0f}x "
          f"(bucketed), {metrics['speedup_single_vs_graphormer_python']:.0f}x (one molecule per call); "
          f"vs 400 mol/s measured earlier for Graphormer's Cython: {metrics['speedup_bucketed_vs_graphormer_cython_400']:.1f}x", flush=True)

    # --- conformers: ETKDGv3 + MMFF, one worker process, 10 s limit, no cache --------------------------------------
    conf_smiles = smiles[::max(1, len(smiles) // args.n_conf)][:args.n_conf]
    t0 = time.perf_counter()
    res = _C.generate_conformers(conf_smiles, seed=0, n_workers=1, timeout_s=10, cache=False, progress=False)
    dt = time.perf_counter() - t0
    counts = Counter(r[0] for r in res)
    metrics['conformers_pool_wall_mol_s'] = len(conf_smiles) / dt
    metrics['conformer_status_counts'] = dict(counts)
    # the same embeddings in this process, timed by CPU time (no wall-clock limit in-process)
    t_cpu, res_cpu = timed(lambda: [_C.embed_conformer(Chem.MolToSmiles(D.prepare_molecule(s)[0]), 0) for s in conf_smiles])
    metrics['conformers_cpu_mol_s'] = len(conf_smiles) / t_cpu
    rows.append(dict(stage=f'conformers ETKDGv3+MMFF, 1 worker process, 10 s limit, wall clock ({dict(counts)})', molecules=len(conf_smiles), mol_per_s=metrics['conformers_pool_wall_mol_s']))
    rows.append(dict(stage='conformers ETKDGv3+MMFF, in-process, CPU time', molecules=len(conf_smiles), mol_per_s=metrics['conformers_cpu_mol_s']))
    print(f'conformers: {metrics["conformers_pool_wall_mol_s"]:.1f} mol/s wall (pool), {metrics["conformers_cpu_mol_s"]:.1f} mol/s CPU; statuses {dict(counts)}', flush=True)

    # --- model forward + backward at the CPU configuration (needs reprbook.flexmol.model) -------------------------
    try:
        from reprbook.flexmol.model import FlexMol, FlexMolConfig, MolBatch
        cfg = FlexMolConfig.preset('cpu', atom_vocab=tuple(D.ATOM_FEATURE_DIMS), bond_vocab=tuple(D.BOND_FEATURE_DIMS))
        torch.manual_seed(0)
        model = FlexMol(cfg).train()
        mols = [D.mol_to_graph(s, pos=p, conf_status=st) if p is not None else D.mol_to_graph(s, conf_status=st)
                for s, (st, p, _) in zip(conf_smiles, res)]
        bs = 64
        batches = [MolBatch.from_collated(D.collate_molecules(mols[i:i + bs])) for i in range(0, len(mols), bs)]
        def step():
            for mb in batches:
                model.zero_grad(set_to_none=True)
                out = model(mb, modality='auto')
                out.pred.sum().backward()
        step()  # warm-up
        t_m = [timed(step)[0] for _ in range(max(1, args.repeats - 1))]
        metrics['model_fwd_bwd_mol_s'] = len(mols) / med(t_m)
        metrics['model_params'] = sum(p.numel() for p in model.parameters())
        rows.append(dict(stage=f"FlexMol cpu preset (d={cfg.d}, L={cfg.n_layers}) forward+backward, batch {bs}, modality auto",
                         molecules=len(mols), mol_per_s=metrics['model_fwd_bwd_mol_s']))
    except Exception as e:  # the model module is another engineer's; skip gracefully
        notes.append(f'model forward+backward skipped: {type(e).__name__}: {e}')
        print(notes[-1], flush=True)

    for r in rows: r['mol_per_s'] = round(r['mol_per_s'], 1)
    print(markdown_table(rows))
    cfg = dict(n_feat=len(smiles), n_baseline=nb, n_conf=len(conf_smiles), repeats=args.repeats, threads=torch.get_num_threads(),
               omp_num_threads=os.environ.get('OMP_NUM_THREADS'), mean_heavy_atoms=float(sizes.mean()), max_spd=D.MAX_SPD, h_max=D.H_MAX)
    save_results('flexmol', args.out, metrics, config=cfg, table=rows, protocol=' '.join(notes) +
                 ' Molecules: a seeded mix of BBBP/Tox21/HIV. Speeds are molecules per CPU-second (process_time, one thread; conformers: wall clock, one worker process), medians over interleaved repeats, on a 2-core machine shared with other jobs.')
    return metrics

def _peak_reset() -> float:
    "Reset this process's peak resident memory (VmHWM) so that the next phase's peak is its own; returns the RSS (MB)."
    import re
    try:
        open('/proc/self/clear_refs', 'w').write('5')
        return int(re.search(r'VmRSS:\s+(\d+)', open('/proc/self/status').read()).group(1)) / 1024
    except (OSError, AttributeError): return float('nan')


def _peak_mb() -> float:
    import re
    try: return int(re.search(r'VmHWM:\s+(\d+)', open('/proc/self/status').read()).group(1)) / 1024
    except (OSError, AttributeError): return peak_rss_mb()


def _sdpa(on: bool):
    """Fused attention for the pair-bias layers: the logits S (returned: they are the next layer's bias and feed the
    heads) are still computed; `scaled_dot_product_attention` then does mask + softmax (+ dropout) + weights @ V."""
    import torch.nn.functional as F
    from reprbook.flexmol import model as M
    if not hasattr(M, '_orig_attn'): M._orig_attn = M.PairBiasAttention.forward
    def forward(self, a, bias, mask):
        B, n, d = a.shape
        heads = lambda t: t.view(B, n, self.n_heads, d // self.n_heads).transpose(1, 2)
        q, k, v = heads(self.q(a)), heads(self.k(a)), heads(self.v(a))
        logits = q @ k.transpose(-1, -2) / math.sqrt(d // self.n_heads) + bias
        m = bias.masked_fill(~mask[:, None, None, :], float('-inf'))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=m, dropout_p=self.drop.p if self.training else 0.0)
        return self.o(out.transpose(1, 2).reshape(B, n, d)), logits
    M.PairBiasAttention.forward = forward if on else M._orig_attn


# ---------------------------------------------------------------------------------------------------------------
# Training throughput (--train): Stage 1 and Stage 2 steps at the cpu preset, eager vs torch.compile
# ---------------------------------------------------------------------------------------------------------------
def _step_times(model, objective, batches, opt, warmup: int):
    "Wall and process-CPU seconds of each optimiser step (objective forward, backward, AdamW) over `batches`."
    wall, cpu = [], []
    for mb in batches:
        t, c = time.perf_counter(), time.process_time()
        loss, _ = objective(model, mb)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        wall.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
    return wall[warmup:], cpu[warmup:]


def _fast_path(on: bool):
    "The full-batch fast path: skip the per-branch gather/scatter when every molecule of the batch uses the branch."
    from reprbook.flexmol import model as M
    if not hasattr(M, '_orig'): M._orig = (M._scatter, M.MolBatch.select)
    scatter, select = M._orig
    M._scatter = (lambda idx, values, B: values if len(idx) == B else scatter(idx, values, B)) if on else scatter
    M.MolBatch.select = (lambda self, idx: self if len(idx) == len(self) else select(self, idx)) if on else select


def _variant(name: str):
    "Switch the optional code paths on for `name` (eager: none)."
    _fast_path(name == 'fastpath'); _sdpa(name == 'sdpa')


def train_bench(args) -> dict:
    from reprbook.flexmol.datasets import load_qm9, mol_config, sample_path
    from reprbook.flexmol.model import FlexMol, freeze
    from reprbook.flexmol.objectives import Stage1, Stage2
    from reprbook.flexmol.pretrain import MolBatches, withhold
    torch.set_num_threads(args.threads)
    wanted, streams, sources = args.streams.split(','), {}, []
    if 'qm9' in wanted:
        try:
            with np.load(_DS.qm9_path()) as d: n_all = len(d['offsets']) - 1
            idx = np.random.default_rng(0).choice(n_all, args.n_qm9, replace=False)
            qm9, _ = load_qm9(indices=np.sort(idx), progress=False)
            sources.append(f'QM9, {args.n_qm9} seeded random molecules')
        except Exception:
            qm9, _ = load_qm9(path=sample_path('qm9_256.npz'), progress=False); sources.append('packaged QM9 sample (256)')
        paired = [g for g in qm9.graphs if bool(g.has_2d) and bool(g.has_3d)]
        half = len(paired) // 2
        single = [withhold(g, '2d') for g in paired[:half]] + [withhold(g, '3d') for g in paired[half:]]
        streams.update({'stage 1 (paired)': (Stage1, paired), 'stage 2 (2D-only + 3D-only)': (Stage2, single)})
    if 'druglike' in wanted:      # Stage 2 on drug-like molecules, as the CPU plan's MoleculeNet pools give them
        from reprbook.flexmol.datasets import molecules_from_smiles
        smiles, _, src = _bbbp(args.n_druglike)
        ds, _ = molecules_from_smiles(smiles, name='bbbp', conformers=True, seed=0, progress=False)
        with3d = [g for g in ds.graphs if bool(g.has_3d)]
        half = len(with3d) // 2
        drug = [withhold(g, '2d') for g in with3d[:half]] + [withhold(g, '3d') for g in with3d[half:]]
        streams['stage 2, drug-like (2D-only + 3D-only)'] = (Stage2, drug)
        sources.append(f'{src}: the {len(with3d)} of {len(smiles)} molecules in a seeded order that have a conformer '
                       f'(cached ETKDGv3 + MMFF), half as 2D-only, half as 3D-only')
    source = '; '.join(sources)
    bs, n_steps = args.batch, args.steps
    rows, metrics = [], {}
    variants = args.variants.split(',')
    for stage, (Obj, graphs) in streams.items():
        batches = list(MolBatches(graphs, bs, seed=0, epoch=0))
        batches = (batches * (1 + (n_steps + args.warmup) // max(1, len(batches))))[:n_steps + args.warmup]
        mean_atoms = float(np.mean([float(mb.atom_mask.sum(1).float().mean()) for mb in batches]))
        for variant in variants:
            torch.manual_seed(0)
            model = FlexMol(mol_config('cpu', dropout=args.dropout, attn_dropout=args.dropout))
            if Obj is Stage2: freeze(model, ('decoders', 'fl'))
            runner = model
            t_compile = 0.0
            _variant(variant)
            base = _peak_reset()
            if variant == 'compile':
                try:
                    runner = torch.compile(model, dynamic=True)
                    t0 = time.perf_counter(); Obj(seed=0)(runner, batches[0])[0].backward(); t_compile = time.perf_counter() - t0
                except Exception as e:
                    metrics[f'{stage}: compile'] = f'failed: {type(e).__name__}: {str(e)[:200]}'; continue
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
            wall, cpu = _step_times(runner, Obj(seed=0), batches, opt, args.warmup)
            w, c = statistics.median(wall), statistics.median(cpu)
            row = dict(stage=stage, variant=variant, threads=args.threads, batch=bs, mean_atoms=round(mean_atoms, 1),
                       steps=len(wall), mol_per_s_wall=round(bs / w, 1), mol_per_cpu_s=round(bs / c, 1),
                       peak_rss_mb=round(_peak_mb(), 0), rss_before_mb=round(base, 0),
                       compile_s=round(t_compile, 1))
            rows.append(row); print(row, flush=True)
        _variant('eager')
        for variant in [v for v in variants if v in ('fastpath', 'sdpa')]:   # identical outputs: same weights and masks
            losses = []
            for v in ('eager', variant):
                _variant(v); torch.manual_seed(0)
                m0 = FlexMol(mol_config('cpu', dropout=0.0, attn_dropout=0.0))
                losses.append(float(Obj(seed=3)(m0, batches[1])[0]))
            _variant('eager')
            metrics[f'{stage}: |loss eager - {variant}|'] = abs(losses[0] - losses[1])
        if 'compile' not in variants: continue
        # output agreement, dropout off, same weights
        torch.manual_seed(0)
        m0 = FlexMol(mol_config('cpu', dropout=0.0, attn_dropout=0.0))
        try:
            mc = torch.compile(m0, dynamic=True)
            l_e, _ = Obj(seed=3)(m0, batches[1]); l_c, _ = Obj(seed=3)(mc, batches[1])
            metrics[f'{stage}: |loss eager - compiled| / |loss|'] = abs(float(l_e) - float(l_c)) / abs(float(l_e))
        except Exception as e: metrics[f'{stage}: compile agreement'] = f'failed: {type(e).__name__}'
    for r in rows:       # speed relative to eager, same stage, same run
        e = next(x for x in rows if x['stage'] == r['stage'] and x['variant'] == 'eager')
        r['x_eager_wall'] = round(r['mol_per_s_wall'] / e['mol_per_s_wall'], 2)
    return dict(rows=rows, metrics=metrics, source=source)


def _measure_and_save(args, bench, config_keys, protocol) -> dict:
    "Run `bench(args)` while recording the machine's load, print its table, and save it as results/flexmol/<args.out>."
    load = MachineLoad()
    res = bench(args)
    load = load.record()
    print(markdown_table(res['rows']))
    for k, v in res['metrics'].items(): print(f'{k}: {v}')
    print(load['sentence'])
    save_results('flexmol', args.out, {'table': res['rows'], **res['metrics'], 'machine_load': load},
                 config={k: getattr(args, k) for k in config_keys}, table=res['rows'], protocol=protocol(res, load))
    return res


def main_train(argv=None):
    ap = argparse.ArgumentParser(description='FlexMol training throughput (Stage 1, Stage 2) at the cpu preset.')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--n-qm9', type=int, default=4000)
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--steps', type=int, default=30)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--dropout', type=float, default=0.1)
    ap.add_argument('--variants', default='eager,fastpath,sdpa',
                    help='eager, fastpath (skip gather/scatter for full batches), sdpa (fused attention), '
                         'compile (torch.compile, dynamic)')
    ap.add_argument('--streams', default='qm9',
                    help='qm9 (Stage 1 and Stage 2 on QM9 molecules), druglike (Stage 2 on BBBP molecules)')
    ap.add_argument('--n-druglike', type=int, default=400)
    ap.add_argument('--out', default='bench_train')
    args = ap.parse_args(argv)
    return _measure_and_save(args, train_bench, ('threads', 'n_qm9', 'batch', 'steps', 'warmup', 'dropout', 'variants',
                                                 'streams', 'n_druglike'), lambda res, load: (
                          f"{res['source']}; cpu preset model (d=128, L=4, H=8, dropout {args.dropout}), AdamW, batch "
                          f"{args.batch}, {args.threads} thread(s); median over {args.steps} timed steps after "
                          f"{args.warmup} warm-up steps (objective forward, backward, optimiser step); wall clock and "
                          f"process CPU time (all threads) per step; peak resident memory of the process during each "
                          f"row and its resident memory when the row started; {load['sentence']}"))


# ---------------------------------------------------------------------------------------------------------------
# Fine-tuning and prediction throughput (--finetune) on drug-like molecules (BBBP)
# ---------------------------------------------------------------------------------------------------------------
def _bbbp(n: int, seed: int = 0):
    "Up to `n` BBBP SMILES and labels in a seeded order: MoleculeNet's file, else the packaged 64-molecule sample."
    try: path, source = _DS.moleculenet_path('bbbp'), 'BBBP (MoleculeNet)'
    except Exception: path, source = _DS.sample_path('bbbp_64.csv'), 'packaged BBBP sample (64 molecules)'
    df = pd.read_csv(path)
    order = np.random.default_rng(seed).permutation(len(df))[:n]
    return df.iloc[order, 0].tolist(), df.iloc[order, 1].to_numpy(dtype=np.float64)[:, None], source


def _finetune_steps(model, batches, modality, warmup):
    "Wall and CPU seconds and molecules of each fine-tuning step (forward, masked BCE, backward, clip, AdamW)."
    from reprbook.flexmol.finetune import masked_bce
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    wall, cpu, mols = [], [], []
    for mb, y in batches:
        t, c = time.perf_counter(), time.process_time()
        loss = masked_bce(model(mb, modality).pred, y)
        opt.zero_grad(set_to_none=True); loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0); opt.step()
        wall.append(time.perf_counter() - t); cpu.append(time.process_time() - c); mols.append(len(mb))
    return wall[warmup:], cpu[warmup:], mols[warmup:]


def finetune_bench(args) -> dict:
    from reprbook.flexmol.datasets import make_batches, molecules_from_smiles
    from reprbook.flexmol.finetune import finetune_model, forward_all, predict
    torch.set_num_threads(args.threads)
    smiles, y, source = _bbbp(args.n)
    t0 = time.perf_counter()
    ds2, _ = molecules_from_smiles(smiles, y, name='bbbp', progress=False)
    feat_s = time.perf_counter() - t0
    ds, rep = molecules_from_smiles(smiles, y, name='bbbp_3d', conformers=True, seed=0,
                                    progress=False)           # conformers come from the disk cache after a first run
    graphs = [g for g in ds.graphs if bool(g.has_3d)]       # the same molecules for every modality
    sizes = [g.num_nodes for g in graphs]
    rows, metrics = [], dict(featurise_2d_mol_s_wall=round(len(smiles) / feat_s, 1), conformer_statuses=rep.conf_counts,
                             heavy_atoms_mean=round(float(np.mean(sizes)), 1), heavy_atoms_max=int(max(sizes)))
    bs = args.batch
    common = lambda: dict(threads=args.threads, batch=bs, molecules=0)
    cases = [('2d', 'eager'), ('3d', 'eager'), ('both', 'eager')] + [('both', v) for v in ('sdpa',) if v in args.variants]
    for modality, variant in cases:     # fine-tuning steps
        _variant(variant)
        model, _ = finetune_model('default', n_tasks=1, seed=0)
        n_batches = -(-len(graphs) // bs)
        batches = [b for e in range(-(-(args.steps + args.warmup) // n_batches))
                   for b in make_batches(graphs, bs, 0, e, targets=True, bucket=4)][:args.steps + args.warmup]
        base = _peak_reset()
        wall, cpu, mols = _finetune_steps(model, batches, modality, args.warmup)
        rows.append(dict(phase='fine-tune', modality=modality, variant=variant, **common(), steps=len(wall),
                         mol_per_s_wall=round(sum(mols) / sum(wall), 1), mol_per_cpu_s=round(sum(mols) / sum(cpu), 1),
                         peak_rss_mb=round(_peak_mb(), 0), rss_before_mb=round(base, 0)))
        rows[-1]['molecules'] = sum(mols)
        print(rows[-1], flush=True)
    _variant('eager')
    model, _ = finetune_model('default', n_tasks=1, seed=0)
    model.eval()
    preds = {}
    for modality, variant in cases:     # prediction from featurised molecules: collation + forward
        _variant(variant)
        forward_all(model, graphs[:bs], modality, bs)          # warm-up
        base = _peak_reset()
        walls, cpus = [], []
        for _ in range(args.repeats):
            t, c = time.perf_counter(), time.process_time()
            raw, _ = forward_all(model, graphs, modality, bs)
            walls.append(time.perf_counter() - t); cpus.append(time.process_time() - c)
        preds[(modality, variant)] = raw
        rows.append(dict(phase='predict', modality=modality, variant=variant, **common(), steps=-(-len(graphs) // bs),
                         mol_per_s_wall=round(len(graphs) / statistics.median(walls), 1),
                         mol_per_cpu_s=round(len(graphs) / statistics.median(cpus), 1),
                         peak_rss_mb=round(_peak_mb(), 0), rss_before_mb=round(base, 0)))
        rows[-1]['molecules'] = len(graphs)
        print(rows[-1], flush=True)
    _variant('eager')
    for modality, variant in preds:
        if variant != 'eager':
            metrics[f'predict {modality}: max |eager - {variant}|'] = float(
                (preds[(modality, 'eager')] - preds[(modality, variant)]).abs().max())
    # end to end: SMILES -> featurise -> collate -> forward -> table (what `reprbook-mol predict --modality 2d` does),
    # on every molecule, the largest included
    base = _peak_reset()
    t, c = time.perf_counter(), time.process_time()
    df = predict(model, smiles, modality='2d', batch_size=bs)
    w, c = time.perf_counter() - t, time.process_time() - c
    rows.append(dict(phase='predict from SMILES', modality='2d', variant='eager', **common(), steps=-(-len(df) // bs),
                     mol_per_s_wall=round(len(df) / w, 1), mol_per_cpu_s=round(len(df) / c, 1),
                     peak_rss_mb=round(_peak_mb(), 0), rss_before_mb=round(base, 0)))
    rows[-1]['molecules'] = len(df)
    metrics['all_molecules_heavy_atoms_max'] = int(max(g.num_nodes for g in ds2.graphs))
    print(rows[-1], flush=True)
    for r in rows:
        e = next(x for x in rows if (x['phase'], x['modality'], x['variant']) == (r['phase'], r['modality'], 'eager'))
        r['x_eager_wall'] = round(r['mol_per_s_wall'] / e['mol_per_s_wall'], 2)
    return dict(rows=rows, metrics=metrics, source=source, n=len(smiles), n_3d=len(graphs))


def main_finetune(argv=None):
    ap = argparse.ArgumentParser(description='FlexMol fine-tuning and prediction throughput at the cpu preset.')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--n', type=int, default=400, help='BBBP molecules')
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--steps', type=int, default=20)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--variants', default='eager,sdpa')
    ap.add_argument('--out', default='bench_finetune')
    args = ap.parse_args(argv)
    return _measure_and_save(args, finetune_bench, ('threads', 'n', 'batch', 'steps', 'warmup', 'repeats', 'variants'),
                             lambda res, load: (
                          f"{res['source']}: {res['n']} molecules in a seeded order, read from SMILES (largest "
                          f"fragment, heavy atoms) with ETKDGv3 + MMFF conformers (from the disk cache; conformer "
                          f"time not included); the {res['n_3d']} with a conformer (up to 50 heavy atoms, mean "
                          f"{res['metrics']['heavy_atoms_mean']}) are used for every modality, so the rows compare "
                          f"the same molecules. Model: the packaged pre-trained cpu-preset FlexMol (d=128, L=4, H=8, "
                          f"dropout 0.1) with a new 1-task head, {args.threads} thread(s). Fine-tune: {args.steps} "
                          f"timed steps after {args.warmup} warm-up steps (forward, masked BCE, backward, gradient "
                          f"clipping, AdamW), batches of {args.batch} in size buckets, molecules / summed step time. "
                          f"Predict: `forward_all` (collation + forward, eval mode, batches of {args.batch}) over "
                          f"those molecules, median of {args.repeats} passes; 'predict from SMILES': "
                          f"`predict(..., modality='2d')` on all {res['n']} molecules (up to "
                          f"{res['metrics']['all_molecules_heavy_atoms_max']} heavy atoms), featurisation included. "
                          f"'2d': the 2D branch and the 3D branch on decoded inputs; '3d': the reverse; 'both': two "
                          f"real branches, no decoder. Peak resident memory of the process during each row, and its "
                          f"resident memory when the row started (libraries, data, model and the allocator's cache; \
importing torch, RDKit and PyG alone takes about 0.8 GB); {load['sentence']}"))


if __name__ == '__main__':
    if '--train' in sys.argv:
        sys.argv.remove('--train'); main_train()
    elif '--finetune' in sys.argv:
        sys.argv.remove('--finetune'); main_finetune()
    else: main()
