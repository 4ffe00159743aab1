"""Run every notebook in nbs/ the way `nbdev-test` does: same skip flags (`tst_flags`), same working directory.

A notebook that stops because a dataset is not in the data directory (`DataNotFoundError`) is skipped with that
error's message, which names the file and how to provide it, so the suite passes on a fresh clone without data.
CI sets REPRBOOK_REQUIRE_DATA=1 for its run with the data, where such a stop is a failure."""
import os, re
import pytest
from pathlib import Path
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook

ROOT = Path(__file__).resolve().parents[1]
CFG = get_config(ROOT)
NOTEBOOKS = sorted(p for p in (ROOT/'nbs').rglob('*.ipynb') if not any(part.startswith(('.', '_')) for part in p.relative_to(ROOT/'nbs').parts))
SKIP = CFG.tst_flags.split() if isinstance(CFG.tst_flags, str) else list(CFG.tst_flags)


def missing_data_reason(err: str) -> str | None:
    "The `DataNotFoundError` line of a failed notebook's traceback, or None when it failed for another reason."
    hits = re.findall(r'DataNotFoundError: (.+)', err)
    return hits[-1].strip() if hits else None


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[str(p.relative_to(ROOT/'nbs')) for p in NOTEBOOKS])
def test_notebook(nb, capfd):
    ok, secs = run_notebook(nb, skip_flags=SKIP, basepath=CFG.config_path, cell_timeout=CFG.cell_timeout)
    if ok: return
    out, err = capfd.readouterr()
    reason = missing_data_reason(err)
    if reason and os.environ.get('REPRBOOK_REQUIRE_DATA', '0') in ('0', ''):
        pytest.skip(f'{nb.name} needs data that is not here: {reason}')
    print(err[-20000:])
    pytest.fail(f'{nb.name} failed (see the traceback above)')


def test_skip_flags_are_the_documented_ones():
    assert set(SKIP) == {'notest', 'slow', 'gpu'}


def test_missing_data_reason():
    tb = 'Traceback...\nreprbook.core.DataNotFoundError: qm9/qm9.npz is not in the data directory /x. Place it at /x/qm9/qm9.npz.'
    assert missing_data_reason(tb).startswith('qm9/qm9.npz is not in the data directory')
    assert missing_data_reason('AssertionError') is None
