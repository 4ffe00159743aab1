"""Run every notebook in nbs/ the way `nbdev-test` does: same skip flags (`tst_flags`), same working directory."""
import pytest
from pathlib import Path
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook

ROOT = Path(__file__).resolve().parents[1]
CFG = get_config(ROOT)
NOTEBOOKS = sorted(p for p in (ROOT/'nbs').rglob('*.ipynb') if not any(part.startswith(('.', '_')) for part in p.relative_to(ROOT/'nbs').parts))
SKIP = CFG.tst_flags.split() if isinstance(CFG.tst_flags, str) else list(CFG.tst_flags)


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[str(p.relative_to(ROOT/'nbs')) for p in NOTEBOOKS])
def test_notebook(nb):
    ok, secs = run_notebook(nb, skip_flags=SKIP, basepath=CFG.config_path, cell_timeout=CFG.cell_timeout)
    assert ok, f'{nb.name} failed (see the traceback above)'


def test_skip_flags_are_the_documented_ones():
    assert set(SKIP) == {'notest', 'slow', 'gpu'}
