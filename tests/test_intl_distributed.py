"""INTL whitening under torch.distributed: two CPU processes (gloo) gather their embeddings before whitening, and the result equals
single-process whitening of the concatenated batch, values and gradients (the official FullGatherLayer semantics)."""
import textwrap
from conftest import torchrun

SCRIPT = textwrap.dedent('''
    import sys, torch
    from pathlib import Path
    from reprbook.core import dist_init
    from reprbook.intl.spectral import iternorm, intl_loss, intl_beta, power_st
    info = dist_init()
    assert info.world_size == 2
    r, W = info.rank, info.world_size
    g = torch.Generator().manual_seed(0)                      # the same global batch on every rank
    m, d = 16, 64
    Z1, Z2 = torch.randn(m, d, generator=g, dtype=torch.float64), torch.randn(m, d, generator=g, dtype=torch.float64)
    Zb = torch.randn(64, 8, generator=g, dtype=torch.float64)  # batch-axis case: m > d
    probe = torch.randn(m, d, generator=g, dtype=torch.float64)
    rows = lambda X: X[r * X.shape[0] // W:(r + 1) * X.shape[0] // W]
    alone = lambda z: z                                       # gather_fn that disables gathering: the single-process reference
    f64 = dict(whiten_dtype=torch.float64)

    # 1) values: each rank returns the whitening of the *global* batch
    for axis, X in [(0, Z1), (1, Zb)]:
        out = iternorm(rows(X).clone(), axis=axis, **f64)
        ref = iternorm(X, axis=axis, gather_fn=alone, **f64)
        assert out.shape == X.shape and (out - ref).abs().max() <= 1e-12, (axis, (out - ref).abs().max())
    assert (power_st(rows(Zb).clone(), 0.5, axis=1) - power_st(Zb, 0.5, axis=1, gather_fn=alone)).abs().max() <= 1e-10

    # 2) gradients: the backward pass sums every rank's copy of the (identical) loss, so the local gradient is
    #    world_size x the global-loss gradient of the local rows; DDP's averaging over ranks divides it out again.
    x = rows(Z1).clone().requires_grad_()
    (iternorm(x, **f64) * probe).sum().backward()
    X = Z1.clone().requires_grad_()
    (iternorm(X, gather_fn=alone, **f64) * probe).sum().backward()
    assert (x.grad / W - rows(X.grad)).abs().max() <= 1e-12, (x.grad / W - rows(X.grad)).abs().max()

    for impl in ('gram', 'reference'):
        a, b = rows(Z1).clone().requires_grad_(), rows(Z2).clone().requires_grad_()
        loss, terms = intl_loss(a, b, impl=impl, return_terms=True, **f64)
        loss.backward()
        A, B = Z1.clone().requires_grad_(), Z2.clone().requires_grad_()
        ref = intl_loss(A, B, impl=impl, gather_fn=alone, **f64)
        ref.backward()
        assert abs(loss.item() - ref.item()) <= 1e-12 and terms['beta'] == intl_beta(m), (impl, loss.item(), ref.item(), terms['beta'])
        for local, full in [(a, A), (b, B)]:
            err = (local.grad / W - rows(full.grad)).abs().max()
            assert err <= 1e-12, (impl, err)
    (Path(sys.argv[1]) / f'ok{r}').write_text(f'OK rank {r} world {W}')    # a file per rank: stdout lines interleave
    torch.distributed.barrier(); torch.distributed.destroy_process_group()   # exiting with gloo alive can abort
''')


def test_gathered_whitening_equals_single_process(tmp_path):
    r = torchrun(SCRIPT, tmp_path)
    for rank in (0, 1): assert (tmp_path/f'ok{rank}').read_text() == f'OK rank {rank} world 2', r.stdout + r.stderr
