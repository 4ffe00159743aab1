"""The shared Trainer runs unchanged under torchrun: two CPU processes (gloo) end with identical weights."""
import textwrap
from conftest import torchrun
from pathlib import Path

SCRIPT = textwrap.dedent('''
    import sys, torch
    from torch import nn
    from pathlib import Path
    from reprbook.core import Trainer, dist_init, dist_info, seed_everything
    out = Path(sys.argv[1])
    info = dist_init()
    seed_everything(0)                      # same initialisation on every rank (DDP also broadcasts rank 0's)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(256, 8, generator=g); y = X @ torch.randn(8, 1, generator=g)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    def data(epoch):
        idx = torch.randperm(256, generator=torch.Generator().manual_seed(epoch))
        shard = idx[info.rank::info.world_size]             # each rank its own half
        return [shard[i:i + 32] for i in range(0, len(shard), 32)]
    step = lambda m, idx: nn.functional.mse_loss(m(X[idx]), y[idx])
    tr = Trainer(model, opt, step, run_dir=out/'run', progress=False)
    hist = tr.fit(data, epochs=3)
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, out/f'rank{info.rank}.pt')
    assert isinstance(tr.model, torch.nn.parallel.DistributedDataParallel)
    print("rank", info.rank, 'world', info.world_size, 'loss', hist[-1]['loss'])
    torch.distributed.barrier(); torch.distributed.destroy_process_group()   # exiting with gloo alive can abort
''')


def test_two_cpu_processes_end_identical(tmp_path):
    import torch
    r = torchrun(SCRIPT, tmp_path)
    assert 'world 2' in r.stdout
    a, b = torch.load(tmp_path/'rank0.pt'), torch.load(tmp_path/'rank1.pt')
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), k
    assert (tmp_path/'run'/'last.pt').exists()         # rank 0 wrote the checkpoint
