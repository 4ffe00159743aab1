"""The resume contract for every INTL method: N steps in one go and N/2 steps, a restart from the checkpoint and the
remaining N/2 give identical weights (torch.equal), W-MSE's private generator included. Tiny random images, one thread."""
import pytest, torch
from reprbook.intl.data import ImageData
from reprbook.intl.methods import METHODS
from reprbook.intl.train import recipe, train_ssl

KW = {'wmse': dict(proj_dim=8, method_kwargs={'w_size': 16}), 'intl_m': dict(n_small_crops=1, method_kwargs={'m0': 0.9}),
      'power': dict(proj_dim=8, method_kwargs={'p': 0.5, 'axis': 1, 'beta': None})}
N = 4                                              # one epoch of 4 steps; the interruption falls inside it


@pytest.fixture(scope='module')
def data():
    g = torch.Generator().manual_seed(0)
    images = lambda n: ImageData(torch.randint(0, 256, (n, 12, 12, 3), generator=g, dtype=torch.uint8),
                                 torch.arange(n) % 4, 'random')
    return images(N * 32), images(32)


@pytest.mark.parametrize('method', sorted(METHODS))
def test_resume_is_exact(method, data, tmp_path):
    torch.set_num_threads(1)
    kw = {**dict(width=4, proj_hidden=32, proj_dim=64, img_size=8, batch_size=32, epochs=1, knn_every=1, probe_size=16,
                 linear_epochs=1), **KW.get(method, {})}
    cfg = recipe('ci_smoke', method=method, **kw)
    train, test = data
    full, tf = train_ssl(cfg, train, test, run_dir=tmp_path/'straight', progress=False)
    half, _ = train_ssl(cfg, train, test, run_dir=tmp_path/'resumed', progress=False, max_steps=N // 2)
    assert half['steps'] == N // 2 and 'final' not in half
    rest, tr = train_ssl(cfg, train, test, run_dir=tmp_path/'resumed', progress=False)
    assert full['steps'] == rest['steps'] == N
    sa, sb = tf.model.state_dict(), tr.model.state_dict()
    assert sa.keys() == sb.keys()
    bad = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not bad, f'{method}: weights differ after resume in {bad[:5]}'
    assert [h['loss'] for h in full['history']] == [h['loss'] for h in rest['history']]
    if method == 'wmse':   # the generator's state is part of the run: both end in the same place
        assert torch.equal(tf.model.method.gen.get_state(), tr.model.method.gen.get_state())
