"""Write README.md from nbs/index.ipynb without Quarto.

nbdev's own `nbdev-readme` renders through Quarto, which cannot be installed here. This does the same job with
nbdev's notebook processing (hidden and export cells dropped, directives removed) and nbconvert's Markdown exporter.
Usage: python tools/make_readme.py [--check]   (--check exits 1 if README.md is out of date)
"""
import re, sys
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter

ROOT = Path(__file__).resolve().parents[1]
DIRECTIVE = re.compile(r'^\s*#\|\s*(.*)$')
HIDE = {'hide', 'export', 'exporti', 'exports', 'default_exp', 'include: false'}
NO_ECHO = 'echo: false'    # Quarto's meaning: show the cell's output, not its code

def _directives(src):
    return [m.group(1).strip() for m in map(DIRECTIVE.match, src.splitlines()) if m]

def render(nb_path=ROOT/'nbs'/'index.ipynb'):
    nb = nbformat.read(nb_path, as_version=4)
    cells = []
    for c in nb.cells:
        ds = _directives(c.source) if c.cell_type == 'code' else []
        if any(d.split()[0] in HIDE or d in HIDE for d in ds if d): continue
        if c.cell_type == 'code' and NO_ECHO in ds:
            for o in c.get('outputs', []):      # the output alone, as Markdown when the cell displayed Markdown
                data = o.get('data', {})
                text = data.get('text/markdown') or o.get('text') or data.get('text/plain') or ''
                if text: cells.append(nbformat.v4.new_markdown_cell(text))
            continue
        if c.cell_type == 'code':
            c.source = '\n'.join(l for l in c.source.splitlines() if not DIRECTIVE.match(l))
        cells.append(c)
    nb.cells = cells
    body, _ = MarkdownExporter(exclude_input_prompt=True, exclude_output_prompt=True).from_notebook_node(nb)
    # nbdev's summary line "> text" becomes the description paragraph, as on the docs home page
    body = re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'
    return '<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n' + body

if __name__ == '__main__':
    text = render()
    readme = ROOT/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text() != text:
            print('README.md is out of date with nbs/index.ipynb: run `python tools/make_readme.py` and commit.', file=sys.stderr)
            sys.exit(1)
    else:
        readme.write_text(text)
        print(f'wrote {readme}')
