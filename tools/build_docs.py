"""Build the documentation site offline, without Quarto: `python tools/build_docs.py` writes it to `_docs/`.

The pages are nbdev's: every notebook goes through nbdev's own docs processing (`nbdev.serve.proc_nbs`, the step
`nbdev-docs` runs before Quarto: `show_doc` API reference with docments, hidden and exported cells removed, backticked
names linked through `reprbook/_modidx.py`, front matter from the `# title` / `> summary` cell; only cells holding imports,
`show_doc` and exported code are executed, so experiment notebooks keep their stored outputs; unlike `nbdev-docs`, a
cell flagged `slow`/`gpu`/`notest` is never executed, even when it holds an import). This script then renders the processed notebooks to static HTML the way Quarto would for `nbs/_quarto.yml`:
Pandoc-flavoured Markdown through markdown-it-py and mdit-py-plugins (dollar math, `{...}` attributes, `:::` divs,
footnotes, tables), Quarto's cell directives (`echo`, `output`, `include`, `code-fold`), Pandoc's heading identifiers
(so nbdev's `page.html#name` links resolve), a sidebar grouped by chapter, an "On this page" table of contents and a
search box. Math is typeset by KaTeX from a local copy installed from npm (`package.json`), never a CDN. Why this
renderer and not mkdocs or jupyter-book: see `nbs/02_docs.ipynb`.

With Quarto installed, `nbdev-docs` (and `nbdev-preview`) build the same site from the same notebooks and
`nbs/_quarto.yml`; the GitHub Pages workflow does that.

Usage:
    python tools/build_docs.py                 # build into _docs/ (git-ignored)
    python tools/build_docs.py --serve 8000    # build, then serve on http://127.0.0.1:8000
    python tools/build_docs.py --sidebar       # only rewrite nbs/sidebar.yml from the notebooks that exist
    python tools/build_docs.py --proc-only && nbdev-docs   # Quarto site; nbdev-docs reuses the processed notebooks
Options: --out DIR, --force (re-process every notebook), --n-workers N (nbdev processing workers, default 2),
--keep-going (leave out, with a warning, notebooks that nbdev cannot process).
"""
from __future__ import annotations

import argparse, base64, hashlib, html, json, os, re, shutil, string, subprocess, sys, tempfile, time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
ASSETS = Path(__file__).resolve().parent/'docs'
NPM_DIR = ROOT/'.cache'/'docs-npm'              # git-ignored; package.json and package-lock.json are copied here
KATEX_FILES = ('katex.min.js', 'katex.min.css', 'fonts')

# The sidebar groups pages by the first digit of the notebook's number: 0x Foundation, 1x INTL, 2x Rot-Pro, 3x FlexMol.
CHAPTERS = {'0': 'Foundation', '1': 'INTL', '2': 'Rot-Pro', '3': 'FlexMol'}
OTHER_SECTION = 'More'
# Each paper chapter: its paper and official code (linked under every page's title) and a card on the home page.
PAPERS = {
    '1': dict(paper='Modulate Your Spectrum in Self-Supervised Learning', venue='Weng et al., ICLR 2024',
              paper_url='https://arxiv.org/abs/2305.16789', code='winci-ai/INTL', code_url='https://github.com/winci-ai/INTL',
              blurb='Whitening is one spectral transformation among many; IterNorm with a trace loss pushes the '
                    "embedding's eigenvalues toward a flat spectrum: what the trace loss guarantees is proved, the rest "
                    'is measured.'),
    '2': dict(paper='Rot-Pro: Modeling Transitivity by Projection in Knowledge Graph Embedding', venue='Song et al., NeurIPS 2021',
              paper_url='https://arxiv.org/abs/2110.14450', code='tewiSong/Rot-Pro', code_url='https://github.com/tewiSong/Rot-Pro',
              blurb='An idempotent projection followed by a relational rotation models transitive relations, which '
                    'rotations alone cannot.'),
    '3': dict(paper='FlexMol: flexible 2D/3D molecular pre-training', venue='Song et al., CIKM 2025',
              paper_url='https://arxiv.org/abs/2510.07035', code='tewiSong/FlexMol', code_url='https://github.com/tewiSong/FlexMol',
              blurb='Separate 2D and 3D encoders that share attention, with decoders that generate the missing modality.'),
}

import yaml
from markdown_it import MarkdownIt
from mdit_py_plugins.attrs import attrs_plugin
from mdit_py_plugins.container import container_plugin
from mdit_py_plugins.deflist import deflist_plugin
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.tasklists import tasklists_plugin
from pygments import highlight as _pyg_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound


def log(*a): print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Site configuration: nbs/_quarto.yml and its metadata files, merged as Quarto merges them
# ---------------------------------------------------------------------------------------------------------------
def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items(): out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def site_config(nbs: Path = NBS) -> dict:
    cfg = yaml.safe_load((nbs/'_quarto.yml').read_text()) or {}
    for name in cfg.get('metadata-files', []):
        if name == 'sidebar.yml': continue                  # the offline site builds its sidebar from the notebooks
        p = nbs/name
        if p.exists(): cfg = _merge(cfg, yaml.safe_load(p.read_text()) or {})
    return cfg


# ---------------------------------------------------------------------------------------------------------------
# The sidebar: generated from the notebooks that exist, grouped by chapter (also written to nbs/sidebar.yml)
# ---------------------------------------------------------------------------------------------------------------
def _pages(nbs: Path) -> list[Path]:
    return sorted(p for p in nbs.rglob('*') if p.suffix in ('.ipynb', '.qmd', '.md') and p.is_file()
                  and not any(part.startswith(('.', '_')) for part in p.relative_to(nbs).parts))


def sidebar_sections(nbs: Path = NBS, only: set | None = None) -> list[tuple[str | None, list[str]]]:
    "[(section title or None for top level, [notebook paths relative to nbs])], index first, then the chapters."
    top, groups = [], {}
    for p in _pages(nbs):
        rel = p.relative_to(nbs).as_posix()
        if only is not None and rel not in only: continue
        if p.stem == 'index' and p.parent == nbs: top.insert(0, rel); continue
        m = re.match(r'(\d)[\da-z]*_', p.name)
        title = CHAPTERS.get(m.group(1), OTHER_SECTION) if m else OTHER_SECTION
        groups.setdefault(title, []).append(rel)
    order = list(CHAPTERS.values()) + [OTHER_SECTION]
    return [(None, top)] + [(t, groups[t]) for t in order if t in groups]


def sidebar_yml(nbs: Path = NBS, only: set | None = None) -> str:
    contents = []
    for title, files in sidebar_sections(nbs, only):
        if title is None: contents += files
        else: contents.append({'section': title, 'contents': files})
    head = '# Generated by `python tools/build_docs.py --sidebar` from the notebooks in nbs/ (chapters by number: 0x Foundation, 1x INTL, 2x Rot-Pro, 3x FlexMol).\n'
    return head + yaml.safe_dump({'website': {'sidebar': {'contents': contents}}}, sort_keys=False, indent=2)


# ---------------------------------------------------------------------------------------------------------------
# KaTeX: a local copy from npm (package.json / package-lock.json), never a CDN
# ---------------------------------------------------------------------------------------------------------------
def katex_dir() -> Path:
    "The folder holding katex.min.js, katex.min.css and fonts/; installs it with `npm ci` on first use."
    if os.environ.get('REPRBOOK_KATEX_DIR'):
        d = Path(os.environ['REPRBOOK_KATEX_DIR'])
        if not all((d/f).exists() for f in KATEX_FILES): sys.exit(f'REPRBOOK_KATEX_DIR={d} does not hold {KATEX_FILES}')
        return d
    d = NPM_DIR/'node_modules'/'katex'/'dist'
    lock = (ROOT/'package-lock.json').read_text()
    if all((d/f).exists() for f in KATEX_FILES) and (NPM_DIR/'package-lock.json').exists() \
            and (NPM_DIR/'package-lock.json').read_text() == lock:
        return d
    npm = shutil.which('npm')
    if not npm:
        sys.exit('The docs need KaTeX from npm (package.json), and npm was not found. Install Node.js and npm '
                 '(Debian: `apt-get install nodejs npm`), or point REPRBOOK_KATEX_DIR at a folder holding '
                 'katex.min.js, katex.min.css and fonts/ (the `dist` folder of the npm package katex).')
    NPM_DIR.mkdir(parents=True, exist_ok=True)
    for f in ('package.json', 'package-lock.json'): shutil.copy2(ROOT/f, NPM_DIR/f)
    log(f'installing KaTeX with npm ci into {NPM_DIR.relative_to(ROOT)} (once)')
    r = subprocess.run([npm, 'ci', '--no-audit', '--no-fund', '--loglevel=error'], cwd=NPM_DIR, capture_output=True, text=True)
    if r.returncode or not all((d/f).exists() for f in KATEX_FILES):
        (NPM_DIR/'package-lock.json').unlink(missing_ok=True)
        sys.exit(f'`npm ci` failed in {NPM_DIR}:\n{r.stdout}{r.stderr}')
    return d


# ---------------------------------------------------------------------------------------------------------------
# Markdown: Pandoc's dialect as Quarto uses it, with markdown-it-py
# ---------------------------------------------------------------------------------------------------------------
_FORMATTER = HtmlFormatter(nowrap=True)


def highlight_code(code: str, lang: str | None) -> str:
    try: lexer = get_lexer_by_name((lang or 'text').strip().split()[0].strip('{}.') or 'text')
    except ClassNotFound: lexer = get_lexer_by_name('text')
    return _pyg_highlight(code, lexer, _FORMATTER)


def pandoc_id(text: str) -> str:
    "Pandoc's auto_identifiers, which Quarto uses and nbdev's doc links (`page.html#name`) rely on."
    s = ''.join(c for c in text if c.isalnum() or c in '_-. \n\t')
    s = re.sub(r'\s+', '-', s.strip()).lower()
    s = re.sub(r'^[^a-z\u00c0-\uffff]+', '', s)
    return s or 'section'


_ATTR_RE = re.compile(r'\s*\{([^{}]*)\}\s*$')


def parse_attrs(s: str) -> dict:
    "Pandoc attributes `#id .class key=value key=\"value\"` into {'id':..., 'class': [...], key: value}."
    out = {'class': []}
    for m in re.finditer(r'([#.][\w:.-]+)|([\w-]+)=(?:"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|(\S+))|(\S+)', s):
        if m.group(1):
            if m.group(1)[0] == '#': out['id'] = m.group(1)[1:]
            else: out['class'].append(m.group(1)[1:])
        elif m.group(2): out[m.group(2)] = next(g for g in m.group(3, 4, 5) if g is not None)
        elif m.group(6): out['class'].append(m.group(6))    # `::: callout-note` (bare class)
    return out


def _attrs_html(a: dict) -> str:
    parts = []
    if a.get('id'): parts.append(f'id="{html.escape(a["id"])}"')
    if a.get('class'): parts.append(f'class="{html.escape(" ".join(a["class"]))}"')
    parts += [f'{k}="{html.escape(str(v))}"' for k, v in a.items() if k not in ('id', 'class')]
    return (' ' + ' '.join(parts)) if parts else ''


CALLOUT_TITLES = {'note': 'Note', 'tip': 'Tip', 'warning': 'Warning', 'caution': 'Caution', 'important': 'Important'}


def _render_div(self, tokens, idx, options, env):
    tok = tokens[idx]
    if tok.nesting != 1: return '</div></div>\n' if tok.meta.get('callout') else '</div>\n'
    a = parse_attrs(tok.info.strip().strip('{}'))
    kind = next((c.split('-', 1)[1] for c in a['class'] if c.startswith('callout-')), None)
    if kind is None: return f'<div{_attrs_html(a)}>\n'
    tok.meta['callout'] = True
    # the closing token is the matching one; mark it so it closes both divs
    depth = 0
    for t in tokens[idx:]:
        if t.type == tok.type: depth += 1
        elif t.type == tok.type.replace('_open', '_close'):
            depth -= 1
            if depth == 0: t.meta['callout'] = True; break
    title = a.pop('title', None) or CALLOUT_TITLES.get(kind, kind.title())
    a['class'] = ['callout', f'callout-{kind}'] + [c for c in a['class'] if not c.startswith('callout-')]
    return f'<div{_attrs_html(a)}><div class="callout-title">{html.escape(title)}</div><div class="callout-body">\n'


def _heading_ids(state):
    "Pandoc heading identifiers, `{#id .class}` heading attributes, numbered duplicates; records the TOC."
    env = state.env
    used = env.setdefault('ids', {})
    toc = env.setdefault('toc', [])
    toks = state.tokens
    for i, tok in enumerate(toks):
        if tok.type != 'heading_open': continue
        inline = toks[i+1]
        attrs = {}
        if inline.children and inline.children[-1].type == 'text':
            m = _ATTR_RE.search(inline.children[-1].content)
            if m:
                attrs = parse_attrs(m.group(1))
                inline.children[-1].content = inline.children[-1].content[:m.start()]
        text = ''.join(c.content for c in (inline.children or []) if c.type in ('text', 'code_inline', 'math_inline'))
        hid = attrs.get('id') or pandoc_id(text)
        if not attrs.get('id') and hid in used:
            used[hid] += 1; hid = f'{hid}-{used[hid]}'
        used.setdefault(hid, 0)
        tok.attrSet('id', hid)
        if attrs.get('class'): tok.attrSet('class', ' '.join(attrs['class']))
        toc.append((int(tok.tag[1]), hid, text.strip()))


def _escaped(src: str, pos: int) -> bool:
    n = 0
    while pos - 1 - n >= 0 and src[pos - 1 - n] == '\\': n += 1
    return n % 2 == 1


def pandoc_inline_math(state, silent: bool) -> bool:
    """Pandoc's `tex_math_dollars` inline rule. `$...$`: the opening `$` is followed by a non-space; the closing `$` is
    the next unescaped one, and it must follow a non-space and not be followed by a digit (so `$5 and $6` stay text).
    `$$...$$`: display math inside a paragraph. No blank line inside either. (mdit-py-plugins' own rule, with
    `allow_digits=False`, also looks at the character *before* an opening `$` at the start of a paragraph, which is
    the paragraph's last character: `$x$ is 3` stayed raw text.)"""
    src, pos = state.src, state.pos
    if src[pos] != '$' or _escaped(src, pos): return False
    double = src.startswith('$$', pos)
    start = pos + (2 if double else 1)
    if start >= len(src): return False
    if not double and src[start].isspace(): return False
    end = start
    while True:
        end = src.find('$$' if double else '$', end)
        if end < 0: return False
        if not _escaped(src, end): break
        end += 1
    text = src[start:end]
    if not text.strip() or re.search(r'\n[ \t]*\n', text): return False
    if not double and (text[-1].isspace() or src[end + 1:end + 2].isdigit()): return False
    if not silent:
        tok = state.push('math_inline_double' if double else 'math_inline', 'math', 0)
        tok.content, tok.markup = text, '$$' if double else '$'
    state.pos = end + (2 if double else 1)
    return True


_CONTROL_ESCAPES = {'\t': '\\t', '\x08': '\\b', '\x0c': '\\f', '\x0b': '\\v'}


def math_tex(tex: str, env: dict) -> str:
    """TeX with the control characters a JSON escape leaves (`"\\times"` written as `"\times"` holds a TAB and
    `imes`) turned back into the commands they ate; each repair is noted in `env['control_chars']`."""
    if not any(c in tex for c in _CONTROL_ESCAPES): return tex
    env.setdefault('control_chars', []).append(tex.strip()[:60])
    return ''.join(_CONTROL_ESCAPES.get(c, c) if c != '\t' or (i + 1 < len(tex) and tex[i + 1].isalpha()) else ' '
                   for i, c in enumerate(tex))


def make_markdown() -> MarkdownIt:
    md = MarkdownIt('commonmark', {'html': True, 'typographer': True,
                                   'highlight': lambda code, lang, attrs: highlight_code(code, lang)})
    md.enable(['table', 'strikethrough', 'replacements', 'smartquotes'])
    # `$$...$$` blocks from mdit-py-plugins; inline `$...$` and `$$...$$` with Pandoc's own rule (below)
    md.use(dollarmath_plugin, allow_space=False, allow_digits=False, double_inline=True, allow_blank_lines=False,
           allow_labels=False)
    md.inline.ruler.at('math_inline', pandoc_inline_math)
    # `$$...$$` inside a paragraph: Pandoc's <span class="math display"> (a div may not sit inside a <p>)
    md.add_render_rule('math_inline_double', lambda self, tokens, idx, options, env:
                       f'<span class="math display">{html.escape(math_tex(tokens[idx].content, env))}</span>')
    md.add_render_rule('math_inline', lambda self, tokens, idx, options, env:
                       f'<span class="math inline">{html.escape(math_tex(tokens[idx].content, env).strip())}</span>')
    md.add_render_rule('math_block', lambda self, tokens, idx, options, env:
                       f'<div class="math block">\n{html.escape(math_tex(tokens[idx].content, env).strip())}\n</div>\n')
    md.use(attrs_plugin, spans=True)
    md.use(container_plugin, name='div', marker=':', validate=lambda params, *a: bool(params.strip()), render=_render_div)
    md.use(footnote_plugin).use(deflist_plugin).use(tasklists_plugin)
    md.core.ruler.push('pandoc_heading_ids', _heading_ids)
    # fenced code blocks: Quarto's markup (div.sourceCode > pre > code) with Pygments classes
    def fence(self, tokens, idx, options, env):
        tok = tokens[idx]
        lang = tok.info.strip().split()[0].strip('{}.') if tok.info.strip() else ''
        return (f'<div class="sourceCode"><pre class="sourceCode {html.escape(lang)} highlight"><code>'
                f'{highlight_code(tok.content, lang)}</code></pre></div>\n')
    md.add_render_rule('fence', fence)
    return md


MD = make_markdown()


def _cells(row: str) -> int:
    "How many cells a pipe-table row has, as GFM splits it: on every pipe not escaped with a backslash."
    row = row.strip()
    n = len(re.findall(r'(?<!\\)\|', row)) + 1
    return n - row.startswith('|') - (row.endswith('|') and not row.endswith('\\|'))


def table_width_mismatches(src: str) -> list[str]:
    """Rows of a pipe table with more or fewer cells than its separator row: GFM drops the extra cells silently (an
    unescaped `|` in a cell, e.g. inside backticks or math, splits it)."""
    out, lines = [], src.split('\n')
    for i in range(1, len(lines)):
        if not (_TABLE_SEP_RE.match(lines[i]) and '|' in lines[i - 1]): continue
        width = _cells(lines[i])
        for row in [lines[i - 1]] + list(__import__('itertools').takewhile(lambda l: '|' in l and l.strip(), lines[i + 1:])):
            if _cells(row) != width: out.append(f'{_cells(row)} cells for {width} columns: {row.strip()[:90]}')
    return out


def render_markdown(src: str, env: dict) -> str:
    if '|' in src and '-|' in src.replace(' ', '').replace(':', ''):
        env.setdefault('table_rows', []).extend(table_width_mismatches(src))
    return MD.render(src, env)


# ---------------------------------------------------------------------------------------------------------------
# Notebooks: Quarto's cell options and output rendering
# ---------------------------------------------------------------------------------------------------------------
_OPT_RE = re.compile(r'^\s*#\|\s?(.*)$')
_ANSI_RE = re.compile(r'\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])')
MIME_ORDER = ('image/svg+xml', 'image/png', 'image/jpeg', 'image/gif', 'text/html', 'text/markdown', 'text/latex', 'text/plain')


def cell_options(source: str) -> tuple[dict, str]:
    "Quarto's `#| key: value` options at the top of a code cell, and the source without them."
    lines, opts, i = source.splitlines(), [], 0
    while i < len(lines) and (m := _OPT_RE.match(lines[i])): opts.append(m.group(1)); i += 1
    try: d = yaml.safe_load('\n'.join(opts)) if opts else {}
    except yaml.YAMLError: d = {}
    if not isinstance(d, dict): d = {}
    return d, '\n'.join(lines[i:]).strip('\n')


def _text(x) -> str: return ''.join(x) if isinstance(x, list) else (x or '')


def _clean_stream(s: str) -> str:
    s = _ANSI_RE.sub('', s)
    # progress bars redraw with '\r': keep what the terminal finally showed on each line
    return '\n'.join(line.rsplit('\r', 1)[-1] if '\r' in line.rstrip('\r') else line.rstrip('\r') for line in s.split('\n'))


def _pre(text: str, cls: str) -> str:
    return f'<div class="cell-output {cls}"><pre><code>{html.escape(text)}</code></pre></div>\n'


_TABLE_SEP_RE = re.compile(r'^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)+\|?\s*$|^\s*\|\s*:?-{3,}:?\s*\|\s*$')


def split_markdown_tables(text: str) -> list[tuple[str, str]]:
    """Printed text cut into ('text', ...) and ('table', ...) pieces: a Markdown pipe table (a header row with pipes,
    a `|---|---|` separator, rows with pipes) that a cell printed, e.g. with `core.markdown_table`."""
    lines, out, i, start = text.split('\n'), [], 0, 0
    while i < len(lines) - 1:
        if '|' in lines[i] and _TABLE_SEP_RE.match(lines[i + 1]):
            j = i + 2
            while j < len(lines) and '|' in lines[j] and lines[j].strip(): j += 1
            if i > start: out.append(('text', '\n'.join(lines[start:i])))
            out.append(('table', '\n'.join(lines[i:j])))
            start = i = j
        else: i += 1
    if start < len(lines): out.append(('text', '\n'.join(lines[start:])))
    return [(k, v) for k, v in out if k == 'table' or v.strip()]


def render_printed(text: str, cls: str, env: dict) -> str:
    "Printed text as a Quarto page shows it, except that Markdown tables in it are rendered as tables."
    pieces = split_markdown_tables(text)
    if not any(k == 'table' for k, _ in pieces): return _pre(text, cls)
    out = []
    for k, v in pieces:
        if k == 'text': out.append(_pre(v.strip('\n'), cls))
        else: out.append(f'<div class="cell-output cell-output-display printed-table">{render_markdown(v, env)}</div>\n')
    return ''.join(out)


@dataclass
class Page:
    src: Path                       # the notebook in nbs/
    rel: str                        # its path relative to nbs/
    out: str                        # output file relative to the site root, e.g. core.html
    title: str = ''
    description: str = ''
    body: str = ''
    toc: list = field(default_factory=list)
    figures: dict = field(default_factory=dict)      # site-relative path -> bytes
    notes: list = field(default_factory=list)        # problems in the notebook's text the build repaired or found


def output_file(rel: str, fm: dict) -> str:
    d = Path(rel).parent
    name = fm.get('output-file') or re.sub(r'^\d+_', '', Path(rel).stem) + '.html'
    return (d/name).as_posix()


def render_output(o: dict, opts: dict, page: Page, fig_id: str, env: dict) -> str:
    t = o.get('output_type')
    if t == 'stream':
        text = _clean_stream(_text(o.get('text')))
        if not text.strip(): return ''
        return render_printed(text, f'cell-output-{o.get("name", "stdout")}', env)
    if t == 'error':
        return _pre(_ANSI_RE.sub('', '\n'.join(o.get('traceback') or [f'{o.get("ename")}: {o.get("evalue")}'])), 'cell-output-error')
    data = o.get('data') or {}
    if any(k.startswith('application/vnd.jupyter.widget') for k in data): return ''   # widgets need a live kernel
    mime = next((m for m in MIME_ORDER if m in data), None)
    if mime is None: return ''
    v = data[mime]
    if mime.startswith('image/'):
        ext = {'image/svg+xml': 'svg', 'image/png': 'png', 'image/jpeg': 'jpg', 'image/gif': 'gif'}[mime]
        raw = _text(v).encode() if ext == 'svg' else base64.b64decode(_text(v))
        path = f'{Path(page.out).stem}_files/figure-html/{fig_id}.{ext}'
        page.figures[(Path(page.out).parent/path).as_posix()] = raw
        alt = opts.get('fig-alt') or opts.get('fig-cap')
        if not alt:                       # Quarto leaves it empty; the test lists these cells for their notebooks
            page.notes.append(f'the figure of {env.get("cell_label", fig_id)} has neither `#| fig-cap` nor `#| fig-alt`')
            alt = f'Figure from the code cell above ({page.title})'
        img = f'<a href="{path}" class="figure-link" title="Open the full-size image"><img src="{path}" alt="{html.escape(_strip_tags(render_markdown(str(alt), {})))}" class="figure-img"></a>'
        cap = f'<figcaption>{render_markdown(str(opts["fig-cap"]), env)}</figcaption>' if opts.get('fig-cap') else ''
        return f'<div class="cell-output cell-output-display"><figure class="figure">{img}{cap}</figure></div>\n'
    if mime == 'text/html': return f'<div class="cell-output cell-output-display">{_text(v)}</div>\n'
    if mime == 'text/markdown':
        body = render_markdown(_text(v), env)
        return body if opts.get('output') == 'asis' else f'<div class="cell-output cell-output-display">{body}</div>\n'
    if mime == 'text/latex':
        tex = _text(v).strip()
        if not tex.startswith('$'): tex = f'$$\n{tex}\n$$'
        return f'<div class="cell-output cell-output-display">{render_markdown(tex, env)}</div>\n'
    text = _text(v)
    return render_printed(text, 'cell-output-display', env) if text.strip() else ''


def render_code_cell(cell: dict, page: Page, idx: int, env: dict, lang: str) -> str:
    opts, src = cell_options(_text(cell.get('source')))
    if str(opts.get('include', True)).lower() == 'false': return ''
    parts = []
    if str(opts.get('echo', True)).lower() != 'false' and src.strip():
        code = (f'<div class="sourceCode cell-code"><pre class="sourceCode {lang} highlight"><code>'
                f'{highlight_code(src, lang)}</code></pre></div>\n')
        fold = opts.get('code-fold')
        if fold not in (None, False, 'false'):
            summary = html.escape(str(opts.get('code-summary', 'Code')))
            code = f'<details class="code-fold"{" open" if str(fold) == "show" else ""}><summary>{summary}</summary>{code}</details>\n'
        parts.append(code)
    if str(opts.get('output', True)).lower() != 'false':
        for j, o in enumerate(cell.get('outputs') or []):
            parts.append(render_output(o, opts, page, f'cell-{idx}-output-{j+1}', env))
    inner = ''.join(parts)
    if not inner.strip(): return ''
    if opts.get('output') == 'asis' and str(opts.get('echo', True)).lower() == 'false': return inner
    label = f' id="{html.escape(str(opts["label"]))}"' if opts.get('label') else ''
    return f'<div class="cell"{label}>\n{inner}</div>\n'


def _attachments(src: str, cell: dict) -> str:
    for name, d in (cell.get('attachments') or {}).items():
        mime, b64 = next(iter(d.items()))
        src = src.replace(f'attachment:{name}', f'data:{mime};base64,{_text(b64)}')
    return src


def render_notebook(proc: Path, src: Path, rel: str) -> Page:
    nb = json.loads(proc.read_text())
    lang = ((nb.get('metadata') or {}).get('kernelspec') or {}).get('language') or 'python'
    fm, cells = {}, nb.get('cells', [])
    if cells and cells[0].get('cell_type') == 'raw':
        m = re.match(r'^---\s*\n(.*?)\n---\s*$', _text(cells[0].get('source')).strip(), re.S)
        if m:
            fm = yaml.safe_load(m.group(1)) or {}
            cells = cells[1:]
    page = Page(src=src, rel=rel, out=output_file(rel, fm), title=str(fm.get('title', Path(rel).stem)),
                description=str(fm.get('description', '') or ''))
    env, parts = {}, []
    try: src_index = {c.get('id'): i for i, c in enumerate(json.loads(src.read_text()).get('cells', []))}
    except (OSError, ValueError): src_index = {}
    for i, c in enumerate(cells):
        t = c.get('cell_type')
        env['cell_label'] = f'cell {src_index[c.get("id")]}' if c.get('id') in src_index else f'processed cell {i}'
        if t == 'markdown': parts.append(render_markdown(_attachments(_text(c.get('source')), c), env))
        elif t == 'code': parts.append(render_code_cell(c, page, i, env, lang))
        elif t == 'raw':
            fmt = (c.get('metadata') or {}).get('format') or (c.get('metadata') or {}).get('raw_mimetype') or ''
            if 'html' in fmt: parts.append(_text(c.get('source')))
    page.body = ''.join(parts)
    page.toc = [(lvl, hid, text) for lvl, hid, text in env.get('toc', []) if lvl in (2, 3)]
    page.notes += [f'a control character (TAB from a `\\t` escape?) in the math `{t}`: repaired here, fix the notebook'
                   for t in env.get('control_chars', [])]
    page.notes += [f'a table row with {t} (escape a `|` inside a cell as `\\|`)' for t in env.get('table_rows', [])]
    return page


def render_markdown_page(src: Path, rel: str) -> Page:
    text = src.read_text()
    fm = {}
    m = re.match(r'^---\s*\n(.*?)\n---\s*\n', text, re.S)
    if m: fm, text = yaml.safe_load(m.group(1)) or {}, text[m.end():]
    page = Page(src=src, rel=rel, out=output_file(rel, fm), title=str(fm.get('title', Path(rel).stem)),
                description=str(fm.get('description', '') or ''))
    env = {}
    page.body = render_markdown(text, env)
    page.toc = [(lvl, hid, t) for lvl, hid, t in env.get('toc', []) if lvl in (2, 3)]
    return page


# ---------------------------------------------------------------------------------------------------------------
# Links and local images
# ---------------------------------------------------------------------------------------------------------------
def _relpath(target: str, from_page: str) -> str:
    return os.path.relpath(target, start=Path(from_page).parent.as_posix() or '.').replace(os.sep, '/')


def fix_links(page: Page, pages_by_src: dict, site_url: str, out_dir: Path, copies: dict, warnings: list) -> str:
    body = page.body
    site_url = site_url.rstrip('/') + '/' if site_url else None

    def href(m):
        url = html.unescape(m.group(2))
        if site_url and url.startswith(site_url):                    # nbdev's absolute doc links -> this site
            url = _relpath(url[len(site_url):] or 'index.html', page.out)
        elif not re.match(r'^[a-z][a-z0-9+.-]*:|^#|^/', url):          # relative: notebook links -> their pages
            path, _, frag = url.partition('#')
            if path.endswith(('.ipynb', '.qmd', '.md')):
                target = (Path(page.rel).parent/path).as_posix()
                target = os.path.normpath(target).replace(os.sep, '/')
                if target in pages_by_src:
                    url = _relpath(pages_by_src[target].out, page.out) + (f'#{frag}' if frag else '')
        return f'{m.group(1)}"{html.escape(url)}"'

    def src(m):
        url = html.unescape(m.group(2))
        if re.match(r'^[a-z][a-z0-9+.-]*:|^/|^#', url) or url.startswith(f'{Path(page.out).stem}_files/'):
            return m.group(0)
        f = (page.src.parent/url.split('#')[0].split('?')[0]).resolve()
        if not f.is_file():
            warnings.append(f'{page.rel}: image {url} not found'); return m.group(0)
        try: dest = f.relative_to(NBS.resolve()).as_posix()
        except ValueError:                                              # outside nbs/ (e.g. ../results/x.png)
            dest = f'_assets/{hashlib.md5(str(f).encode()).hexdigest()[:8]}_{f.name}'
        copies[dest] = f
        return f'{m.group(1)}"{html.escape(_relpath(dest, page.out))}"'

    body = re.sub(r'(<a\b[^>]*?\bhref=)"([^"]*)"', href, body)
    body = re.sub(r'(<img\b[^>]*?\bsrc=)"([^"]*)"', src, body)
    return body


# ---------------------------------------------------------------------------------------------------------------
# Layout, search index
# ---------------------------------------------------------------------------------------------------------------
_TEX_SYMBOLS = {
    'alpha': 'α', 'beta': 'β', 'gamma': 'γ', 'delta': 'δ', 'epsilon': 'ε', 'varepsilon': 'ε', 'zeta': 'ζ', 'eta': 'η',
    'theta': 'θ', 'vartheta': 'θ', 'iota': 'ι', 'kappa': 'κ', 'lambda': 'λ', 'mu': 'μ', 'nu': 'ν', 'xi': 'ξ', 'pi': 'π',
    'rho': 'ρ', 'sigma': 'σ', 'tau': 'τ', 'upsilon': 'υ', 'phi': 'φ', 'varphi': 'φ', 'chi': 'χ', 'psi': 'ψ', 'omega': 'ω',
    'Gamma': 'Γ', 'Delta': 'Δ', 'Theta': 'Θ', 'Lambda': 'Λ', 'Xi': 'Ξ', 'Pi': 'Π', 'Sigma': 'Σ', 'Phi': 'Φ', 'Psi': 'Ψ',
    'Omega': 'Ω', 'sum': '∑', 'prod': '∏', 'int': '∫', 'partial': '∂', 'nabla': '∇', 'infty': '∞', 'times': '×',
    'cdot': '·', 'cdots': '⋯', 'ldots': '…', 'dots': '…', 'leq': '≤', 'le': '≤', 'geq': '≥', 'ge': '≥', 'neq': '≠',
    'ne': '≠', 'approx': '≈', 'sim': '∼', 'propto': '∝', 'in': '∈', 'notin': '∉', 'subset': '⊂', 'subseteq': '⊆',
    'cup': '∪', 'cap': '∩', 'to': '→', 'rightarrow': '→', 'leftarrow': '←', 'Rightarrow': '⇒', 'mapsto': '↦',
    'forall': '∀', 'exists': '∃', 'pm': '±', 'otimes': '⊗', 'odot': '⊙', 'circ': '∘', 'top': '⊤', 'perp': '⊥',
    'lVert': '‖', 'rVert': '‖', 'Vert': '‖', '|': '‖', 'lvert': '|', 'rvert': '|', 'langle': '⟨', 'rangle': '⟩',
    'sqrt': '√', 'ell': 'ℓ', 'emptyset': '∅', 'quad': ' ', 'qquad': ' ', ',': ' ', ';': ' ', '!': '', ' ': ' ',
}


def tex_to_text(tex: str) -> str:
    "A plain-text reading of TeX for search snippets: Greek letters and symbols as Unicode, no commands or braces."
    t = re.sub(r'\\(?:frac|dfrac|tfrac)\s*\{([^{}]*)\}\s*\{([^{}]*)\}', r'(\1)/(\2)', tex)
    t = re.sub(r'\\(?:text|textrm|mathrm|operatorname|mathbf|mathbb|mathcal|boldsymbol|bm|mathit|mathsf|hat|bar|tilde|'
               r'widehat|widetilde|overline|vec)\s*', '', t)
    t = re.sub(r'\\(left|right|big|Big|bigg|Bigg)(?![a-zA-Z])', '', t)
    t = re.sub(r'\\([a-zA-Z]+|.)', lambda m: _TEX_SYMBOLS.get(m.group(1), m.group(1)), t)
    t = t.replace('{', '').replace('}', '').replace('&', ' ').replace('~', ' ')
    return re.sub(r'\s+', ' ', t).strip()


def _strip_tags(s: str) -> str:
    s = re.sub(r'<(script|style)\b.*?</\1>', ' ', s, flags=re.S)
    s = re.sub(r'<(span|div) class="math[^"]*">(.*?)</\1>', lambda m: f' {tex_to_text(html.unescape(m.group(2)))} ', s, flags=re.S)
    return re.sub(r'\s+', ' ', html.unescape(re.sub(r'<[^>]+>', ' ', s))).strip()


def search_entries(page: Page) -> list[dict]:
    "Quarto's search.json entries: one per page and one per h2/h3 section."
    pieces = re.split(r'(<h[23]\b[^>]*\bid="[^"]*"[^>]*>.*?</h[23]>)', page.body, flags=re.S)
    entries = [{'objectID': page.out, 'href': page.out, 'title': page.title, 'section': '',
                'text': (page.description + ' ' + _strip_tags(pieces[0]))[:3000].strip()}]
    for h, content in zip(pieces[1::2], pieces[2::2]):
        hid = re.search(r'\bid="([^"]*)"', h).group(1)
        entries.append({'objectID': f'{page.out}#{hid}', 'href': f'{page.out}#{hid}', 'title': page.title,
                        'section': _strip_tags(h), 'text': _strip_tags(content)[:3000]})
    return entries


def sidebar_html(sections, pages_by_src: dict, current: Page) -> str:
    def item(rel):
        p = pages_by_src.get(rel)
        if p is None: return ''
        active = ' class="active" aria-current="page"' if p is current else ''
        sub = ''
        if p is current and p.toc:
            sub = '<ul class="sidebar-toc">' + ''.join(f'<li><a href="#{html.escape(hid)}">{html.escape(text)}</a></li>'
                                                       for lvl, hid, text in p.toc if lvl == 2) + '</ul>'
        return f'<li><a href="{html.escape(_relpath(p.out, current.out))}"{active}>{html.escape(p.title)}</a>{sub}</li>'
    out = ['<ul class="sidebar-menu">']
    for title, files in sections:
        if title is None: out += [item(r) for r in files]
        else:
            out.append(f'<li class="sidebar-section"><span class="sidebar-section-title">{html.escape(title)}</span><ul>')
            out += [item(r) for r in files]
            out.append('</ul></li>')
    out.append('</ul>')
    return '\n'.join(out)


def toc_html(page: Page) -> str:
    if not page.toc: return ''
    items = ''.join(f'<li class="toc-{lvl}"><a href="#{html.escape(hid)}">{html.escape(text)}</a></li>' for lvl, hid, text in page.toc)
    return f'<h2 id="toc-title">On this page</h2><ul>{items}</ul>'


def _chapter_key(rel: str) -> str | None:
    m = re.match(r'(\d)[\da-z]*_', Path(rel).name)
    return m.group(1) if m else None


def chapter_links_html(page: Page) -> str:
    "Under a chapter page's title: the paper and its official code."
    info = PAPERS.get(_chapter_key(page.rel) or '')
    if not info: return ''
    return (f'<p class="chapter-links">Paper: <a href="{info["paper_url"]}">{html.escape(info["paper"])}</a> '
            f'({html.escape(info["venue"])}) · Official code: <a href="{info["code_url"]}"><code>{html.escape(info["code"])}</code></a></p>')


def chapter_cards_html(sections, pages_by_src: dict, current: Page) -> str:
    "The home page's cards: one per chapter, linking to its first page, its paper and its official code."
    cards = []
    for title, files in sections:
        key = _chapter_key(files[0]) if title and files else None
        if key is None: continue
        first = pages_by_src[files[0]]
        info = PAPERS.get(key)
        pages = ''.join(f'<li><a href="{html.escape(_relpath(pages_by_src[f].out, current.out))}">{html.escape(pages_by_src[f].title)}</a></li>'
                        for f in files)
        extra = (f'<p class="card-paper"><em>{html.escape(info["paper"])}</em> ({html.escape(info["venue"])})</p>'
                 f'<p class="card-blurb">{html.escape(info["blurb"])}</p>'
                 f'<p class="card-links"><a href="{info["paper_url"]}">paper</a> · <a href="{info["code_url"]}">official code</a></p>'
                 if info else '')
        cards.append(f'<div class="chapter-card"><h3 class="card-title"><a href="{html.escape(_relpath(first.out, current.out))}">'
                     f'{html.escape(title)}</a></h3>{extra}<ul class="card-pages">{pages}</ul></div>')
    return f'<div class="chapter-cards" role="list">{"".join(cards)}</div>\n' if cards else ''


def page_nav_html(order: list, current: Page) -> str:
    "Previous and next page, in the sidebar's order."
    i = order.index(current)
    def link(p, cls, label):
        return (f'<a class="{cls}" href="{html.escape(_relpath(p.out, current.out))}" rel="{cls[5:]}">'
                f'<span class="page-nav-label">{label}</span><span class="page-nav-title">{html.escape(p.title)}</span></a>')
    prev = link(order[i-1], 'page-prev', '← Previous') if i > 0 else '<span></span>'
    nxt = link(order[i+1], 'page-next', 'Next →') if i + 1 < len(order) else '<span></span>'
    return f'<nav class="page-nav" aria-label="Previous and next page">{prev}{nxt}</nav>'


# ---------------------------------------------------------------------------------------------------------------
# show_doc as the site shows it (installed in nbdev's processing, so `nbdev-docs` after `--proc-only` shows the same)
# ---------------------------------------------------------------------------------------------------------------
SIG_WIDTH = 100                     # signatures wrap at this many columns (the text column shows about 110)
_TWINS: dict = {}


def _library_twin(sym):
    """The library's own copy of `sym` when a notebook cell defined it: nbdev executes exported cells in `__main__`,
    where there is no source, so docments (per-parameter and per-field comments) would be lost."""
    f = sym.fget if isinstance(sym, property) else getattr(sym, '__func__', sym)
    mod, qn = getattr(f, '__module__', None), getattr(f, '__qualname__', None)
    if not qn or '<locals>' in qn or (mod and mod != '__main__'): return sym
    if not _TWINS:
        import importlib
        from nbdev.config import get_config
        try: syms = importlib.import_module(f'{get_config().lib_name}._modidx').d['syms']
        except Exception: syms = {}
        for m, names in syms.items():
            for full in names: _TWINS.setdefault(full[len(m)+1:], []).append(m)
        _TWINS.setdefault('', [])
    mods = _TWINS.get(qn, [])
    if len(mods) != 1: return sym
    try:
        import importlib, inspect
        obj = importlib.import_module(mods[0])
        for part in qn.split('.')[:-1]: obj = getattr(obj, part)
        return inspect.getattr_static(obj, qn.split('.')[-1]) if '.' in qn else getattr(obj, qn)
    except Exception: return sym


def _member_kind(sym) -> str:
    "'class', 'property', 'classmethod', 'staticmethod' or 'def' (a function or a method)."
    import inspect
    if inspect.isclass(sym): return 'class'
    if isinstance(sym, (property, __import__('functools').cached_property)): return 'property'
    if isinstance(sym, classmethod) or (inspect.ismethod(sym) and inspect.isclass(sym.__self__)): return 'classmethod'
    if isinstance(sym, staticmethod): return 'staticmethod'
    qn = getattr(sym, '__qualname__', '')
    if inspect.isfunction(sym) and '.' in qn and '<locals>' not in qn:     # a plain function defined in a class body?
        owner = _owner(sym)
        if owner is not None and isinstance(inspect.getattr_static(owner, sym.__name__, None), staticmethod):
            return 'staticmethod'
    return 'def'


def _owner(f):
    import inspect, sys
    mod = sys.modules.get(getattr(f, '__module__', None) or '')
    obj = mod
    try:
        for part in f.__qualname__.split('.')[:-1]: obj = getattr(obj, part)
    except AttributeError: return None
    return obj if inspect.isclass(obj) else None


def _anno_text(anno) -> str:
    from fastcore.docments import _type_str
    s = _type_str(anno)
    while len(s) > 1 and s[0] == s[-1] and s[0] in '\'"': s = s[1:-1]       # `'X'` from a forward reference
    return s


def signature_text(sym, name: str, width: int = SIG_WIDTH) -> str:
    """A readable signature: `class X(...)` for classes (no `->None`), `@property` / `@classmethod` marked, dataclass
    fields and parameters with their comments one per line, no type guessed for an unannotated parameter (`x=None`,
    not `x:NoneType=None`), `field(default_factory=f)` shown as `f()`."""
    import dataclasses, inspect
    from fastcore.docments import docments, empty
    kind = _member_kind(sym)
    if kind == 'property': fn = sym.fget if isinstance(sym, property) else sym.func
    else: fn = getattr(sym, '__func__', sym)
    if kind == 'class': target = sym if dataclasses.is_dataclass(sym) else sym.__init__
    else: target = fn
    try: sig = inspect.signature(sym if kind == 'class' else fn)
    except (TypeError, ValueError): sig = None
    try: dm = docments(target, full=True)
    except Exception: dm = {}
    factories = ({f.name: f.default_factory for f in dataclasses.fields(sym)}
                 if kind == 'class' and dataclasses.is_dataclass(sym) else {})
    plist = list(sig.parameters.items()) if sig else []
    if plist and kind != 'class' and plist[0][0] in ('self', 'cls') and '.' in getattr(fn, '__qualname__', ''):
        plist = plist[1:]                                        # the bound instance or class
    params, star, prev = [], False, None
    for k, p in plist:
        if prev == p.POSITIONAL_ONLY and p.kind != prev: params.append(('/', ''))
        if p.kind == p.KEYWORD_ONLY and not star: params.append(('*', '')); star = True
        if p.kind == p.VAR_POSITIONAL: star = True
        pre = '*' if p.kind == p.VAR_POSITIONAL else '**' if p.kind == p.VAR_KEYWORD else ''
        anno = f':{_anno_text(p.annotation)}' if p.annotation is not empty else ''
        f = factories.get(k, dataclasses.MISSING)
        if f is not dataclasses.MISSING: default = f'={getattr(f, "__name__", "factory")}()'
        elif p.default is not empty: default = '=' + (p.default.__name__ if hasattr(p.default, '__name__') else repr(p.default))
        else: default = ''
        doc = (dm.get(k) or {}).get('docment') if isinstance(dm, dict) else None
        params.append((pre + k + anno + default, ' '.join(str(doc or '').split())))
        prev = p.kind
    if prev == inspect.Parameter.POSITIONAL_ONLY: params.append(('/', ''))
    ret = ''
    if sig is not None and kind != 'class' and sig.return_annotation is not empty:
        ret = f'->{_anno_text(sig.return_annotation)}'
    short = name if kind == 'class' else name.rsplit('.', 1)[-1]
    deco = {'property': '@property\n', 'classmethod': '@classmethod\n', 'staticmethod': '@staticmethod\n'}.get(kind, '')
    if kind == 'property': return f'{deco}def {short}(self){ret}:'
    head = f'class {short}(' if kind == 'class' else f'{"async " if inspect.iscoroutinefunction(fn) else ""}def {short}('
    tail = ')' if kind == 'class' else f'){ret}:'
    one = head + ', '.join(f for f, _ in params) + tail
    if not any(d for _, d in params) and len(one) <= width: return deco + one
    lines = []
    if any(d for _, d in params):                     # one per line, comments aligned where the width allows
        col = min(max(len(f) for f, d in params if d) + 7, width // 2)     # aligned after the commented parameters
        for f, d in params:
            line = f'    {f},'
            lines.append(line + (' ' * max(1, col - len(line)) + f'# {d}' if d else ''))
    else:
        cur = '   '
        for f, _ in params:
            if len(cur) + len(f) + 2 > width and cur.strip(): lines.append(cur.rstrip()); cur = '   '
            cur += f' {f},'
        if cur.strip(): lines.append(cur.rstrip())
        lines[-1] = lines[-1].rstrip(',')
    return deco + head + '\n' + '\n'.join(lines) + '\n' + tail


def own_docstring(sym) -> str:
    "The docstring `sym` itself has: not one inherited from a base class, nor the one dataclasses generate."
    import dataclasses, inspect
    if inspect.isclass(sym):
        d = sym.__dict__.get('__doc__')
        if d and dataclasses.is_dataclass(sym) and d.startswith(sym.__name__ + '('): d = None
        if not d and '__init__' in sym.__dict__: d = getattr(sym.__init__, '__doc__', None)
    else:
        f = sym.fget if isinstance(sym, property) else getattr(sym, 'func', sym) if not callable(sym) else sym
        d = getattr(getattr(f, '__func__', f), '__doc__', None)
    return inspect.cleandoc(d) if isinstance(d, str) and d.strip() else ''


def install_showdoc_renderer():
    "Make nbdev's `show_doc` render through `signature_text` and `own_docstring` (in this process)."
    import nbdev.showdoc as sd
    if getattr(sd.BasicMarkdownRenderer, '_reprbook', False): return

    class SiteMarkdownRenderer(sd.BasicMarkdownRenderer):
        _reprbook = True
        def __init__(self, sym, name=None, title_level=3, maxline=110):
            self.orig = _library_twin(sym)
            super().__init__(self.orig if not isinstance(self.orig, (classmethod, staticmethod)) else self.orig.__func__,
                             name=name, title_level=title_level, maxline=maxline)
            outer = getattr(getattr(self.orig, 'fget', self.orig), '__qualname__', None)
            if name is None and outer and '.' in outer and '<' not in outer and self.nm != outer:
                self.nm = outer              # `@patch` over another decorator: the wrapper holds `Class.name`

        def _repr_markdown_(self):
            doc = '---\n\n'
            src = None
            for key in (self.nm, self.fn):        # nbdev finds the line number from the name as written in the notebook
                try: src = sd.NbdevLookup().code(key)
                except Exception: src = None
                if src and not src.endswith('#LNone'): break
            if src: doc += sd._ext_link(src, 'source', 'style="float:right; font-size:smaller"') + '\n\n'
            doc += f'{"#" * self.title_level} {self.nm} {{.doc-entry}}\n\n'
            doc += f'```python\n{signature_text(self.orig, self.nm)}\n```'
            docs = own_docstring(self.orig)
            if docs:                                   # the first paragraph in italics, as nbdev does with the first line
                first, _, rest = docs.partition('\n\n')
                doc += f'\n\n*{" ".join(first.split())}*' + (f'\n\n{rest}' if rest else '')
            return doc
    sd.BasicMarkdownRenderer = SiteMarkdownRenderer


# ---------------------------------------------------------------------------------------------------------------
# The build
# ---------------------------------------------------------------------------------------------------------------
def _tst_flags() -> set:
    from nbdev.config import get_config
    f = get_config(ROOT).get('tst_flags', '') or ''
    return set(f.split() if isinstance(f, str) else f)


def _docs_filter():
    "nbdev's docs processors (`FilterDefaults`), except that cells flagged `slow`/`gpu`/`notest` are never executed."
    from nbdev.processors import FilterDefaults, exec_show_docs

    class exec_show_docs_unflagged(exec_show_docs):
        "nbdev runs every cell holding an import; a flagged long cell must keep its stored outputs instead."
        def __call__(self, cell):
            if set(getattr(cell, 'directives_', {}) or {}) & _tst_flags(): return
            return super().__call__(cell)

    class DocsFilter(FilterDefaults):
        def base_procs(self): return [exec_show_docs_unflagged if p is exec_show_docs else p for p in super().base_procs()]
    return DocsFilter


_IMPORT_RE = re.compile(r'^\s*(import\s+\w|from\s+[\w.]+\s+import\b)', re.M)


def flagged_cells_with_imports(nbs: Path = NBS) -> list[str]:
    "Cells flagged slow/gpu/notest that hold an import: `nbdev-docs` executes them (nbdev runs every cell with an import)."
    out, flags = [], _tst_flags()
    for p in _pages(nbs):
        if p.suffix != '.ipynb': continue
        for i, c in enumerate(json.loads(p.read_text()).get('cells', [])):
            if c.get('cell_type') != 'code': continue
            opts = cell_options(_text(c.get('source')))[1]
            src = _text(c.get('source'))
            directives = {m.group(1) for m in re.finditer(r'^\s*#\|\s*([\w-]+)', src, re.M)}
            if directives & flags and _IMPORT_RE.search(opts): out.append(f'{p.relative_to(nbs)} cell {i}')
    return out


def _process_one(job):
    "Process one notebook as nbdev.serve_drv does (in a fresh worker process); return an error message or None."
    src, dst, keep_going = job
    from fastcore.nbio import read_nb, write_nb
    os.environ['IN_TEST'] = '1'
    t0 = time.perf_counter()
    try:
        install_showdoc_renderer()
        nb = read_nb(src)
        _docs_filter()()(nb)
        write_nb(nb, dst)
    except Exception as e:
        if not keep_going: raise
        return f'{type(e).__name__}: {str(e)[-400:]}', time.perf_counter() - t0
    finally: os.environ.pop('IN_TEST', None)
    return None, time.perf_counter() - t0


def process_notebooks(force: bool = False, n_workers: int = 1, keep_going: bool = False) -> tuple[Path, list[str]]:
    """nbdev's docs processing, as `nbdev-docs` runs it before Quarto (`nbdev.serve.proc_nbs`, into the git-ignored
    `_proc/`, re-processing only notebooks changed since), with one difference: cells flagged with `tst_flags` are not
    executed even when they hold an import. Returns the cache folder and the notebooks that failed (with `keep_going`;
    otherwise a failure exits)."""
    from fastcore.parallel import parallel
    cache = ROOT/'_proc'
    import nbdev.serve                                   # the same invalidation as nbdev's proc_nbs, plus this file
    newest_code = max(p.stat().st_mtime for p in (ROOT/'pyproject.toml', Path(nbdev.serve.__file__), Path(__file__)) if p.exists())
    if force or (cache.exists() and cache.stat().st_mtime < newest_code): shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(exist_ok=True)
    pages = [p for p in _pages(NBS) if p.suffix == '.ipynb']
    for d in cache.rglob('*.ipynb'):                              # pages whose notebook is gone
        if not (NBS/d.relative_to(cache)).exists(): d.unlink()
    jobs, failed, timings = [], [], {}
    for p in pages:
        dst = cache/p.relative_to(NBS)
        if dst.exists() and p.stat().st_mtime <= dst.stat().st_mtime: continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        jobs.append((p, dst, keep_going))
    cwd = os.getcwd()
    os.chdir(ROOT)                      # as nbdev's _pre_docs does: bare get_config() calls run downstream
    try:
        if jobs:
            # spawned workers (a fresh interpreter per worker, as nbdev uses) must find the function by module name
            if str(Path(__file__).parent) not in sys.path: sys.path.insert(0, str(Path(__file__).parent))
            import importlib
            worker = importlib.import_module('build_docs')._process_one
            errors = parallel(worker, jobs, n_workers=max(1, n_workers), method='spawn', pause=0.01)
            for (p, dst, _), (err, secs) in zip(jobs, errors):
                timings[p.relative_to(NBS).as_posix()] = round(secs, 2)
                if err:
                    rel = p.relative_to(NBS).as_posix()
                    failed.append(rel); dst.unlink(missing_ok=True)
                    log(f'skipping {rel}: {err}')
    except Exception as e:
        # nbdev runs a notebook's imports, exported cells and show_doc cells; one of them failed (nbdev-docs fails too)
        sys.exit(f"nbdev's docs processing failed (`nbdev-docs` fails the same way). nbdev executes every cell that "
                 f"holds an import, so keep imports in cells of their own:\n{type(e).__name__}: {e}")
    finally: os.chdir(cwd)
    cache.touch()
    slow = {k: v for k, v in timings.items() if v > 5}
    if slow: log('nbdev processing took longest on: ' + ', '.join(f'{k} {v:.0f}s' for k, v in sorted(slow.items(), key=lambda kv: -kv[1])))
    return cache, failed


def _scratch_dir(out: Path) -> Path:
    "A git-ignored folder on the output's file system to build in, so a failed build leaves the old site whole."
    d = ROOT/'.cache'/'docs-build' if out.is_relative_to(ROOT) else out.parent
    d.mkdir(parents=True, exist_ok=True)
    return d


def build(out: Path = ROOT/'_docs', force: bool = False, n_workers: int = min(2, os.cpu_count() or 1), quiet: bool = False,
          keep_going: bool = False) -> dict:
    t0 = time.perf_counter()
    cfg = site_config()
    website = cfg.get('website', {})
    site_title = str(website.get('title', 'Docs'))
    site_url = str(website.get('site-url', '') or '')
    repo_url = str(website.get('repo-url', '') or '').rstrip('/')
    css = cfg.get('format', {}).get('html', {}).get('css') or []
    css_files = [css] if isinstance(css, str) else list(css)
    katex = katex_dir()
    proc, failed = process_notebooks(force=force, n_workers=n_workers, keep_going=keep_going)
    t_proc = time.perf_counter() - t0

    # the notebooks as they were when processing started (others may appear meanwhile in a shared checkout)
    done = {p.relative_to(proc).as_posix() for p in proc.rglob('*.ipynb')} | \
           {p.relative_to(NBS).as_posix() for p in _pages(NBS) if p.suffix != '.ipynb'}
    sections = [(t, [f for f in files if f not in failed and f in done]) for t, files in sidebar_sections()]
    sections = [(t, files) for t, files in sections if files]
    pages, pages_by_src = [], {}
    for title, files in sections:
        for rel in files:
            src, p = NBS/rel, proc/rel
            if src.suffix == '.ipynb':
                if not p.exists(): sys.exit(f'nbdev did not produce {p}: run `python tools/build_docs.py --force`')
                page = render_notebook(p, src, rel)
            else: page = render_markdown_page(src, rel)
            pages.append(page); pages_by_src[rel] = page

    tmp = Path(tempfile.mkdtemp(prefix='docs-build-', dir=_scratch_dir(out)))
    (tmp/'site_libs'/'katex').mkdir(parents=True)
    for f in KATEX_FILES:
        (shutil.copytree if (katex/f).is_dir() else shutil.copy2)(katex/f, tmp/'site_libs'/'katex'/f)
    libs = tmp/'site_libs'/'reprbook-docs'
    libs.mkdir(parents=True)
    for f in ('site.css', 'site.js'): shutil.copy2(ASSETS/f, libs/f)
    (libs/'pygments.css').write_text(HtmlFormatter(style='default').get_style_defs('.highlight'))
    for f in css_files:
        if (NBS/f).is_file(): (tmp/f).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(NBS/f, tmp/f)

    template = string.Template((ASSETS/'page.html').read_text())
    copies, index = {}, []
    warnings = [f'{f}: left out, nbdev could not process it' for f in failed]
    warnings += [f'{p.rel}: {n}' for p in pages for n in p.notes]
    warnings += [f'{c}: a slow/gpu/notest cell holds an import, so `nbdev-docs` (Quarto) would run it; this build does not. '
                 'Move the import to a cell of its own.' for c in flagged_cells_with_imports()]
    for page in pages:
        body = fix_links(page, pages_by_src, site_url, tmp, copies, warnings)
        root = _relpath('.', page.out) + '/'
        root = '' if root == './' else root
        css = ''.join(f'<link rel="stylesheet" href="{root}{html.escape(f)}">\n'
                      for f in css_files)
        actions = f'<a href="{html.escape(repo_url)}/issues/new" class="toc-action">Report an issue</a>' if repo_url else ''
        doc = template.substitute(
            root=root, lang='en', site_title=html.escape(site_title), page_title=html.escape(page.title),
            title_html=html.escape(page.title),
            description_meta=html.escape(page.description),
            description_html=(f'<div class="description"><p>{render_markdown(page.description, {}).strip()[3:-4]}</p></div>'
                              if page.description else ''),
            extra_css=css, sidebar=sidebar_html(sections, pages_by_src, page), toc=toc_html(page), actions=actions,
            repo_link=(f'<a class="navbar-repo" href="{html.escape(repo_url)}" aria-label="Source code">GitHub</a>' if repo_url else ''),
            chapter_links=chapter_links_html(page), page_nav=page_nav_html(pages, page),
            body=(chapter_cards_html(sections, pages_by_src, page) if page.out == 'index.html' and 'chapter-cards' not in body
                  else '') + body,
            source=html.escape(page.rel))
        dest = tmp/page.out
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(doc)
        for path, raw in page.figures.items():
            (tmp/path).parent.mkdir(parents=True, exist_ok=True); (tmp/path).write_bytes(raw)
        index += search_entries(page)
    for dest, f in copies.items():
        (tmp/dest).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(f, tmp/dest)
    (tmp/'search.json').write_text(json.dumps(index))
    (libs/'search-index.js').write_text('window.REPRBOOK_SEARCH = ' + json.dumps(index) + ';\n')
    (tmp/'.nojekyll').write_text('')
    shutil.rmtree(out, ignore_errors=True)
    shutil.move(tmp, out)

    stale = (NBS/'sidebar.yml').exists() and (NBS/'sidebar.yml').read_text() != sidebar_yml()
    for w in warnings: log('warning:', w)
    if stale: log('note: nbs/sidebar.yml (used by Quarto) does not list the notebooks that exist: run `python tools/build_docs.py --sidebar`')
    info = {'pages': [p.out for p in pages], 'sources': {p.out: p.rel for p in pages}, 'out': str(out), 'failed': failed, 'seconds_processing': round(t_proc, 2),
            'seconds_total': round(time.perf_counter() - t0, 2), 'warnings': warnings, 'sidebar_stale': stale}
    if not quiet: log(f'built {len(pages)} pages into {out} in {info["seconds_total"]:.1f}s '
                      f'(nbdev processing {info["seconds_processing"]:.1f}s)')
    return info


def serve(directory: Path, port: int = 8000, host: str = '127.0.0.1'):
    import functools, http.server
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    with http.server.ThreadingHTTPServer((host, port), handler) as httpd:
        log(f'serving {directory} on http://{host}:{httpd.server_address[1]}/ (Ctrl-C stops)')
        try: httpd.serve_forever()
        except KeyboardInterrupt: pass


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', type=Path, default=ROOT/'_docs', help='output folder (default: _docs/)')
    ap.add_argument('--force', action='store_true', help="re-process every notebook (ignore nbdev's _proc/ cache)")
    ap.add_argument('--n-workers', type=int, default=min(2, os.cpu_count() or 1), help='nbdev processing worker processes (default 2)')
    ap.add_argument('--proc-only', action='store_true',
                    help="only run nbdev's processing into _proc/ (then `nbdev-docs` reuses it, so Quarto never runs flagged cells)")
    ap.add_argument('--keep-going', action='store_true', help='leave out notebooks that nbdev fails to process, with a warning')
    ap.add_argument('--serve', nargs='?', const=8000, type=int, metavar='PORT', help='serve the site on 127.0.0.1 after building')
    ap.add_argument('--sidebar', action='store_true', help='only rewrite nbs/sidebar.yml from the notebooks that exist')
    ap.add_argument('--tracked', action='store_true', help='with --sidebar: list only notebooks that git tracks')
    a = ap.parse_args(argv)
    if a.sidebar:
        only = None
        if a.tracked:
            r = subprocess.run(['git', 'ls-files', '--', '.'], cwd=NBS, capture_output=True, text=True, check=True)
            only = set(r.stdout.split())
        text = sidebar_yml(only=only)
        if (NBS/'sidebar.yml').exists() and (NBS/'sidebar.yml').read_text() == text: log('nbs/sidebar.yml is up to date')
        else: (NBS/'sidebar.yml').write_text(text); log('wrote nbs/sidebar.yml')
        return
    if a.proc_only:
        cache, failed = process_notebooks(force=a.force, n_workers=a.n_workers, keep_going=a.keep_going)
        log(f'processed the notebooks into {cache}' + (f'; left out {failed}' if failed else ''))
        return
    info = build(a.out.resolve(), force=a.force, n_workers=a.n_workers, keep_going=a.keep_going)
    if a.serve is not None: serve(Path(info['out']), a.serve)


if __name__ == '__main__':
    main()
