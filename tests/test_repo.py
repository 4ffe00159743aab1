"""Repository-level checks: README generated from index.ipynb, replit setup runs the quickstart."""
import os, shlex, subprocess, sys, tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_generated_from_index():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'make_readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_readme_has_the_two_commands():
    text = (ROOT/'README.md').read_text()
    assert 'pip install -e . && reprbook-reproduce all --preset smoke' in text
    assert 'pip install -e ".[dev]" && pytest' in text


def test_replit_run_command_runs_the_quickstart(tmp_path):
    cfg = tomllib.loads((ROOT/'replit'/'.replit').read_text())
    run = cfg['run']
    install, quick = [s.strip() for s in run.split('&&')]
    assert install.startswith('pip install')
    args = shlex.split(quick)
    assert args[0] == 'reprbook-reproduce' and 'smoke' in args
    r = subprocess.run(args + ['--out', str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, **cfg.get('env', {}), 'REPRBOOK_PROGRESS': '0'}, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (ROOT/'replit'/'replit.nix').read_text().count('python311') >= 1
