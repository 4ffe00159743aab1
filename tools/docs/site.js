// The offline docs site's scripts: typeset math with the local KaTeX (as Quarto's html-math-method: katex does),
// heading anchors, the search box over search-index.js (the same entries as search.json), copy buttons on code,
// the menu button on small screens and the current section marked in the contents.
(function () {
  'use strict';
  const root = document.body.dataset.root || '';

  function typesetMath() {
    for (const el of document.querySelectorAll('.math')) {
      if (el.dataset.typeset) continue;
      const display = el.tagName === 'DIV' || el.classList.contains('display');
      katex.render(el.textContent, el, {displayMode: display, throwOnError: false, strict: 'ignore'});
      el.dataset.typeset = '1';
    }
  }

  function addAnchors() {
    for (const h of document.querySelectorAll('main h2[id], main h3[id], main h4[id]')) {
      const a = document.createElement('a');
      a.className = 'anchor'; a.href = '#' + h.id; a.setAttribute('aria-label', 'Link to this section'); a.textContent = '#';
      h.appendChild(a);
    }
  }

  // ----- search -----
  let index = null, loading = null;
  function loadIndex() {
    if (index) return Promise.resolve(index);
    if (!loading) loading = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = root + 'site_libs/reprbook-docs/search-index.js';
      s.onload = () => { index = window.REPRBOOK_SEARCH || []; resolve(index); };
      s.onerror = reject;
      document.head.appendChild(s);
    });
    return loading;
  }

  function escapeHtml(s) { return s.replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c])); }

  function search(q) {
    const terms = q.toLowerCase().split(/\s+/).filter(Boolean);
    if (!terms.length) return [];
    const hits = [];
    for (const e of index) {
      const title = (e.title + ' ' + e.section).toLowerCase(), text = e.text.toLowerCase();
      let score = 0, ok = true;
      for (const t of terms) {
        const inTitle = title.includes(t), inText = text.includes(t);
        if (!inTitle && !inText) { ok = false; break; }
        score += (inTitle ? 10 : 0) + (inText ? 1 : 0) + (e.section.toLowerCase() === t ? 20 : 0);
      }
      if (ok) hits.push([score, e]);
    }
    hits.sort((a, b) => b[0] - a[0]);
    return hits.slice(0, 12).map(h => h[1]);
  }

  function snippet(text, q) {
    const t = q.toLowerCase().split(/\s+/).filter(Boolean)[0] || '';
    const i = Math.max(0, text.toLowerCase().indexOf(t) - 60);
    return (i > 0 ? '…' : '') + text.slice(i, i + 160) + (text.length > i + 160 ? '…' : '');
  }

  function setupSearch() {
    const input = document.getElementById('search-input'), box = document.getElementById('search-results');
    if (!input || !box) return;
    let selected = -1;
    function show() {
      const q = input.value.trim();
      if (!q) { box.hidden = true; return; }
      loadIndex().then(() => {
        const hits = search(q);
        selected = -1;
        box.innerHTML = hits.length ? hits.map(e =>
          `<a href="${root}${escapeHtml(e.href)}"><div class="sr-title">${escapeHtml(e.title)}${e.section ? ' › ' + escapeHtml(e.section) : ''}</div>` +
          `<div class="sr-text">${escapeHtml(snippet(e.text, q))}</div></a>`).join('')
          : '<div class="sr-empty">No results</div>';
        box.hidden = false;
      });
    }
    input.addEventListener('input', show);
    input.addEventListener('focus', () => { loadIndex(); if (input.value.trim()) show(); });
    input.addEventListener('keydown', ev => {
      const links = box.querySelectorAll('a');
      if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
        ev.preventDefault();
        if (!links.length) return;
        selected = (selected + (ev.key === 'ArrowDown' ? 1 : links.length - 1)) % links.length;
        links.forEach((a, i) => a.classList.toggle('selected', i === selected));
      } else if (ev.key === 'Enter' && links.length) {
        window.location.href = links[Math.max(selected, 0)].href;
      } else if (ev.key === 'Escape') { box.hidden = true; }
    });
    document.addEventListener('click', ev => { if (!box.contains(ev.target) && ev.target !== input) box.hidden = true; });
  }

  function addCopyButtons() {
    for (const block of document.querySelectorAll('main div.sourceCode')) {
      const code = block.querySelector('pre code');
      if (!code) continue;
      const b = document.createElement('button');
      b.type = 'button'; b.className = 'code-copy'; b.textContent = 'Copy'; b.setAttribute('aria-label', 'Copy the code');
      b.addEventListener('click', () => {
        const done = () => { b.textContent = 'Copied'; b.classList.add('copied');
                             setTimeout(() => { b.textContent = 'Copy'; b.classList.remove('copied'); }, 1500); };
        const text = code.innerText;
        if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, () => {});
        else {                                  // http:// on another host: the older API
          const t = document.createElement('textarea'); t.value = text; document.body.appendChild(t); t.select();
          try { document.execCommand('copy'); done(); } catch (e) {} t.remove();
        }
      });
      block.appendChild(b);
    }
  }

  function setupMenu() {
    const btn = document.getElementById('sidebar-toggle');
    if (!btn) return;
    const close = () => { document.body.classList.remove('sidebar-open'); btn.setAttribute('aria-expanded', 'false'); };
    btn.addEventListener('click', ev => {
      ev.stopPropagation();
      const open = document.body.classList.toggle('sidebar-open');
      btn.setAttribute('aria-expanded', String(open));
    });
    document.addEventListener('click', ev => {
      if (document.body.classList.contains('sidebar-open') && !document.getElementById('sidebar').contains(ev.target)) close();
    });
    for (const a of document.querySelectorAll('#sidebar a[href^="#"]')) a.addEventListener('click', close);
    document.addEventListener('keydown', ev => { if (ev.key === 'Escape') close(); });
  }

  // the section being read: the last heading above a line a third of the way down the window
  function setupScrollSpy() {
    const links = [...document.querySelectorAll('#TOC a[href^="#"], #sidebar .sidebar-toc a[href^="#"]')];
    if (!links.length) return;
    const ids = [...new Set(links.map(a => decodeURIComponent(a.getAttribute('href').slice(1))))];
    const heads = ids.map(id => document.getElementById(id)).filter(Boolean);
    const h2of = {};
    let lastH2 = null;
    for (const h of document.querySelectorAll('main h2[id], main h3[id]')) { if (h.tagName === 'H2') lastH2 = h.id; h2of[h.id] = lastH2; }
    let ticking = false;
    function update() {
      ticking = false;
      const y = window.innerHeight / 3;
      let cur = null;
      for (const h of heads) { if (h.getBoundingClientRect().top <= y) cur = h.id; else break; }
      if (!cur && heads.length) cur = null;
      for (const a of links) {
        const id = decodeURIComponent(a.getAttribute('href').slice(1));
        const on = a.closest('.sidebar-toc') ? id === (h2of[cur] || cur) : id === cur;
        a.classList.toggle('active', !!cur && on);
        if (on && cur) a.setAttribute('aria-current', 'location'); else a.removeAttribute('aria-current');
      }
    }
    window.addEventListener('scroll', () => { if (!ticking) { ticking = true; requestAnimationFrame(update); } }, {passive: true});
    update();
  }

  document.addEventListener('DOMContentLoaded', () => {
    typesetMath();
    addAnchors();
    setupSearch();
    addCopyButtons();
    setupMenu();
    setupScrollSpy();
  });
})();
