"""Repository-level checks: README generated from index.ipynb, replit setup runs the quickstart."""
import json, os, re, shlex, subprocess, sys, tomllib
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
    # the quickstart itself, with --json so the records can be checked; no data directory and no downloads
    env = {**os.environ, **cfg.get('env', {}), 'REPRBOOK_PROGRESS': '0', 'REPRBOOK_DATA': str(tmp_path/'no-data'),
           'REPRBOOK_OFFLINE': '1'}
    r = subprocess.run(args + ['--out', str(tmp_path/'res'), '--json'], capture_output=True, text=True, cwd=tmp_path,
                       env=env, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)
    assert set(res) == {'intl', 'rotpro', 'flexmol'}, res.keys()
    for c in res: assert (tmp_path/'res'/c/'reproduce_smoke.json').exists()
    assert (ROOT/'replit'/'replit.nix').read_text().count('python311') >= 1


def test_no_private_trainer_attributes_outside_core():
    """Chapters use Trainer's public API (running_means, history, callbacks...), never its `_` attributes."""
    pat = re.compile(r'\b(trainer|tr|self\.trainer)\._[a-z]')
    hits = [f'{p.relative_to(ROOT)}:{i}: {line.strip()}' for p in (ROOT/'reprbook').rglob('*.py') if p.name not in ('core.py', '_modidx.py')
            for i, line in enumerate(p.read_text().splitlines(), 1) if pat.search(line)]
    assert not hits, '\n'.join(hits)
