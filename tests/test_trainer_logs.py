"""What a run leaves for its user to read: the per-step CSV and, with tensorboard installed, event files."""
import csv
import pytest, torch
from torch import nn
from reprbook.core import Trainer


def _run(run_dir, **kw):
    torch.manual_seed(0)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    step = lambda m, i: ((m(x[i]) - y[i]).pow(2).mean(), {'mae': (m(x[i]) - y[i]).abs().mean()})
    tr = Trainer(model, opt, step, run_dir=run_dir, progress=False, **kw)
    tr.fit(lambda e: [torch.arange(8) + 8 * k for k in range(4)], epochs=2)
    return tr


def test_metrics_csv_has_one_row_per_step(tmp_path):
    _run(tmp_path, tensorboard=False)
    with open(tmp_path/'metrics.csv') as f: rows = list(csv.DictReader(f))
    assert [int(r['step']) for r in rows] == list(range(1, 9))
    assert {'loss', 'mae', 'lr', 'items_per_s', 'epoch'} <= set(rows[0])
    assert not (tmp_path/'tb').exists()


def test_tensorboard_event_files(tmp_path):
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    _run(tmp_path)
    acc = EventAccumulator(str(tmp_path/'tb')); acc.Reload()
    assert {'loss', 'mae', 'lr'} <= set(acc.Tags()['scalars'])
    assert [e.step for e in acc.Scalars('loss')] == list(range(1, 9))
