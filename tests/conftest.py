import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault('REPRBOOK_PROGRESS', '0')
os.environ.setdefault('MPLBACKEND', 'Agg')
if not os.environ.get('REPRBOOK_DATA') and (ROOT.parent/'shared'/'data').is_dir():
    os.environ['REPRBOOK_DATA'] = str(ROOT.parent/'shared'/'data')
