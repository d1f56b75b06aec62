// Ledger stream browser. Read-only. Every text from the server goes into
// the page through textContent or attributes, never as HTML.
'use strict';

(function () {
  const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
  const STREAM = /^[A-Za-z0-9._:@$-]{1,200}$/;
  const TAIL_MAX = 100;

  let info = { currency: { code: 'USD', decimals: 2 } };
  let onTailEvent = null; // the current view's interest in live events

  // h builds an element: attrs are set as attributes (or on for handlers),
  // children are nodes or strings (text nodes).
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: 'application/json' } });
    if (!r.ok) {
      let msg = r.statusText;
      try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
      throw new HttpError(r.status, msg);
    }
    return r.json();
  }

  function money(minor) {
    if (minor === undefined || minor === null) return '–';
    const d = info.currency.decimals;
    const neg = minor < 0;
    let s = String(Math.abs(minor));
    if (d > 0) {
      s = s.padStart(d + 1, '0');
      s = s.slice(0, -d) + '.' + s.slice(-d);
    }
    return (neg ? '-' : '') + s;
  }

  function when(t) {
    if (!t) return '';
    const d = new Date(t);
    if (isNaN(d)) return String(t);
    return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  function shortType(t) { return String(t || '').replace(/IntegrationEvent$/, ''); }

  function statusChip(s) {
    const name = s || 'none';
    return h('span', { class: 'status', 'data-status': name }, name);
  }

  function orderHref(id) { return '/ui/orders/' + encodeURIComponent(id); }
  function streamHref(name) { return '/ui/streams/' + encodeURIComponent(name); }
  function orderIdOf(stream) {
    const m = /^order-(.+)$/.exec(stream || '');
    return m && UUID.test(m[1]) ? m[1].toLowerCase() : null;
  }

  function pretty(v) {
    try { return JSON.stringify(v, null, 2); } catch (e) { return String(v); }
  }

  function view() { return document.getElementById('view'); }

  function showError(where, err) {
    where.replaceChildren(h('p', { class: 'error', role: 'alert' },
      err instanceof HttpError ? `${err.status}: ${err.message}` : String(err.message || err)));
  }

  // ---- search ----

  function setupSearch() {
    const form = document.getElementById('search-form');
    const input = document.getElementById('search-input');
    const errEl = document.getElementById('search-error');
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = input.value.trim();
      errEl.hidden = true;
      let target = null;
      if (UUID.test(q)) target = orderHref(q.toLowerCase());
      else if (orderIdOf(q)) target = orderHref(orderIdOf(q));
      else if (STREAM.test(q)) target = streamHref(q);
      if (!target) {
        errEl.textContent = 'Enter an order id (a UUID such as 3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a10) or a stream name.';
        errEl.hidden = false;
        input.focus();
        return;
      }
      window.location.assign(target);
    });
  }

  // ---- home: streams ----

  function renderHome(params) {
    const prefix = params.get('prefix') ?? 'order-';
    const tbody = h('tbody');
    const more = h('button', { id: 'streams-more', type: 'button', hidden: true }, 'More streams');
    const status = h('p', { class: 'muted small', id: 'streams-status' });
    const prefixInput = h('input', { id: 'prefix-input', name: 'prefix', value: prefix, maxlength: 200, spellcheck: 'false' });
    view().replaceChildren(
      h('h1', {}, 'Streams'),
      h('form', { id: 'prefix-form', class: 'inline-form', method: 'get', action: '/' },
        h('label', { for: 'prefix-input' }, 'Name starts with '), prefixInput, h('button', { type: 'submit' }, 'List')),
      h('table', { id: 'streams-list', class: 'grid' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Stream'), h('th', {}, 'Order'), h('th', { class: 'num' }, 'Events'), h('th', { class: 'num' }, 'Last revision'))),
        tbody),
      status, more);
    let after = '';
    async function page() {
      more.disabled = true;
      try {
        const q = new URLSearchParams({ prefix, limit: '50' });
        if (after) q.set('after', after);
        const body = await getJSON('/api/streams?' + q);
        for (const s of body.streams) {
          const oid = s.orderId || orderIdOf(s.name);
          tbody.append(h('tr', { class: 'stream-row', 'data-stream': s.name },
            h('td', {}, h('a', { href: streamHref(s.name) }, s.name)),
            h('td', {}, oid ? h('a', { href: orderHref(oid), class: 'order-link' }, 'timeline') : '–'),
            h('td', { class: 'num' }, s.count),
            h('td', { class: 'num' }, s.lastRevision)));
        }
        after = body.next || '';
        more.hidden = !after;
        status.textContent = tbody.rows.length === 0 ? 'No streams with that prefix yet.' : `${tbody.rows.length} shown`;
        view().dataset.ready = '1';
      } catch (e) {
        showError(status, e);
      } finally {
        more.disabled = false;
      }
    }
    more.addEventListener('click', page);
    onTailEvent = (ev) => {
      if (!ev.stream.startsWith(prefix)) return;
      const row = tbody.querySelector(`tr[data-stream="${CSS.escape(ev.stream)}"]`);
      if (row) {
        row.cells[2].textContent = ev.revision + 1;
        row.cells[3].textContent = ev.revision;
      }
    };
    return page();
  }

  // ---- orders (read model) ----

  function renderOrders() {
    const tbody = h('tbody');
    const more = h('button', { id: 'orders-more', type: 'button', hidden: true }, 'More orders');
    const status = h('p', { class: 'muted small' });
    view().replaceChildren(
      h('h1', {}, 'Orders'),
      h('p', { class: 'muted' }, 'From the read model, in order-id order.'),
      h('table', { id: 'orders-list', class: 'grid' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Order'), h('th', {}, 'Status'), h('th', { class: 'num' }, 'Total'),
          h('th', { class: 'num' }, 'Net'), h('th', { class: 'num' }, 'Facts'), h('th', {}, 'Last fact'))),
        tbody),
      status, more);
    let after = '';
    async function page() {
      more.disabled = true;
      try {
        const q = new URLSearchParams({ limit: '50' });
        if (after) q.set('after', after);
        const body = await getJSON('/api/orders?' + q);
        for (const o of body.orders) {
          tbody.append(h('tr', { 'data-order': o.orderId },
            h('td', {}, h('a', { href: orderHref(o.orderId) }, o.orderId)),
            h('td', {}, statusChip(o.status)),
            h('td', { class: 'num' }, money(o.total)),
            h('td', { class: 'num' }, money(moneyField(o.money, 'net'))),
            h('td', { class: 'num' }, o.facts),
            h('td', {}, when(o.lastAt))));
        }
        after = body.next || '';
        more.hidden = !after;
        status.textContent = tbody.rows.length === 0 ? 'The read model has no orders yet.' : `${tbody.rows.length} shown`;
        view().dataset.ready = '1';
      } catch (e) {
        showError(status, e);
      } finally {
        more.disabled = false;
      }
    }
    more.addEventListener('click', page);
    return page();
  }

  // Totals may be encoded with Go field names or lower-case ones.
  function moneyField(m, name) {
    if (!m) return undefined;
    const cap = name.charAt(0).toUpperCase() + name.slice(1);
    return m[name] !== undefined ? m[name] : m[cap];
  }

  // ---- one event ----

  function eventArticle(e, open) {
    const oid = orderIdOf(e.stream);
    const data = e.dataEncoding ? e.data : pretty(e.data);
    const meta = e.metadataEncoding ? e.metadata : pretty(e.metadata);
    return h('article', { class: 'event', 'data-revision': e.revision, 'data-event-id': e.id },
      h('details', { open: open },
        h('summary', {},
          h('span', { class: 'rev' }, '#' + e.revision), ' ',
          h('span', { class: 'type' }, e.type), ' ',
          h('time', { datetime: e.created || '' }, when(e.created))),
        h('dl', { class: 'kv' },
          h('dt', {}, 'Event id'), h('dd', {}, h('code', {}, e.id)),
          h('dt', {}, 'Position'), h('dd', {}, h('code', {}, e.position)),
          oid ? [h('dt', {}, 'Order'), h('dd', {}, h('a', { href: orderHref(oid) }, oid))] : null),
        h('div', { class: 'json-pair' },
          h('section', {}, h('h4', {}, 'Data', e.dataEncoding ? ` (${e.dataEncoding})` : ''), h('pre', { class: 'json event-data' }, data)),
          h('section', {}, h('h4', {}, 'Metadata', e.metadataEncoding ? ` (${e.metadataEncoding})` : ''), h('pre', { class: 'json event-metadata' }, meta)))));
  }

  // ---- stream page ----

  function renderStream(name, params) {
    const backwards = params.get('dir') === 'backwards';
    const list = h('div', { id: 'stream-events', class: 'events' });
    const more = h('button', { id: 'events-more', type: 'button', hidden: true }, 'More events');
    const status = h('p', { class: 'muted small' });
    const oid = orderIdOf(name);
    const q = new URLSearchParams(params);
    q.set('dir', backwards ? 'forwards' : 'backwards');
    view().replaceChildren(
      h('h1', {}, 'Stream ', h('code', {}, name)),
      h('p', { class: 'links' },
        oid ? h('a', { href: orderHref(oid), id: 'to-order' }, 'Order timeline') : null,
        h('a', { href: streamHref(name) + '?' + q }, backwards ? 'Oldest first' : 'Newest first'),
        h('a', { href: '/api/streams/' + encodeURIComponent(name) }, 'JSON')),
      list, status, more);
    let from = backwards ? 'end' : '0';
    async function page() {
      more.disabled = true;
      try {
        const qs = new URLSearchParams({ from, limit: '50', dir: backwards ? 'backwards' : 'forwards' });
        const body = await getJSON('/api/streams/' + encodeURIComponent(name) + '?' + qs);
        for (const e of body.events) list.append(eventArticle(e, true));
        more.hidden = body.next === undefined || body.next === null;
        if (!more.hidden) from = String(body.next);
        status.textContent = `${list.children.length} event(s) shown`;
        view().dataset.ready = '1';
      } catch (e) {
        showError(status, e);
      } finally {
        more.disabled = false;
      }
    }
    more.addEventListener('click', page);
    onTailEvent = (ev) => {
      if (ev.stream === name && !backwards && more.hidden) list.append(eventArticle(ev, true));
    };
    return page();
  }

  // ---- order page ----

  function moneyTable(totals, caption) {
    const f = (n) => money(moneyField(totals, n));
    return h('table', { class: 'money' }, caption ? h('caption', {}, caption) : null,
      h('tr', {}, h('th', {}, 'captured'), h('th', {}, 'refunded'), h('th', {}, 'charged back'), h('th', {}, 'reversed'), h('th', {}, 'net')),
      h('tr', {}, h('td', {}, f('captured')), h('td', {}, f('refunded')), h('td', {}, f('chargedBack')), h('td', {}, f('reversed')), h('td', {}, f('net'))));
  }

  function isZero(t) {
    return !t || ['captured', 'refunded', 'chargedBack', 'reversed', 'net'].every((k) => !moneyField(t, k));
  }

  function timelineEntry(e) {
    const disp = e.disposition || (e.error ? 'undecodable' : 'unknown');
    const li = h('li', { class: 'timeline-entry', 'data-revision': e.revision, 'data-disposition': disp, 'data-status-after': e.statusAfter || '' },
      h('div', { class: 'entry-head' },
        h('span', { class: 'rev' }, '#' + e.revision), ' ',
        h('span', { class: 'type', title: e.type }, shortType(e.type)), ' ',
        h('span', { class: 'disposition', 'data-disposition': disp }, disp),
        h('time', { datetime: e.at || '' }, when(e.at))),
      h('div', { class: 'status-change' },
        statusChip(e.statusBefore), h('span', { class: 'arrow', 'aria-label': 'to' }, ' → '), statusChip(e.statusAfter)),
      e.reason ? h('p', { class: 'reason' }, e.reason) : null);
    if (e.transitions && e.transitions.length) {
      li.append(h('ul', { class: 'transitions' }, e.transitions.map((t) =>
        h('li', {}, statusChip(t.from), ' → ', statusChip(t.to), t.reason ? h('span', { class: 'muted' }, ' ' + t.reason) : null))));
    }
    if (!isZero(e.delta)) li.append(moneyTable(e.delta, 'change'));
    li.append(moneyTable(e.totals, 'totals after'));
    if (e.flags && e.flags.length) {
      li.append(h('ul', { class: 'flags' }, e.flags.map((f) => h('li', {}, '⚑ ', f))));
    }
    if (e.outbound && e.outbound.length) {
      li.append(h('div', { class: 'outbound' }, h('h4', {}, 'Messages sent'),
        h('ul', {}, e.outbound.map((m) => h('li', { class: 'outbound-message', 'data-kind': m.kind },
          h('span', { class: 'kind' }, m.kind), ' ', h('b', {}, m.name), ' via ', h('code', {}, m.exchange),
          m.routingKey ? [' key ', h('code', {}, m.routingKey)] : null,
          h('br'), h('span', { class: 'muted small' }, 'message id '), h('code', { class: 'message-id' }, m.messageId))))));
    }
    li.append(h('dl', { class: 'kv small' },
      h('dt', {}, 'Event id'), h('dd', {}, h('code', {}, e.eventId)),
      e.messageId ? [h('dt', {}, 'Message id'), h('dd', {}, h('code', {}, e.messageId))] : null,
      e.correlationId ? [h('dt', {}, 'Correlation'), h('dd', {}, h('code', {}, e.correlationId))] : null,
      e.envelope ? [h('dt', {}, 'Envelope'), h('dd', {}, e.envelope)] : null,
      h('dt', {}, 'Recorded'), h('dd', {}, when(e.recorded), ' at ', h('code', {}, e.position))));
    if (e.error) li.append(h('p', { class: 'error' }, 'Cannot decode: ' + e.error));
    return li;
  }

  async function loadChart(id, box) {
    const r = await fetch('/api/orders/' + encodeURIComponent(id) + '/timeline.svg');
    if (!r.ok) throw new HttpError(r.status, r.statusText);
    const doc = new DOMParser().parseFromString(await r.text(), 'image/svg+xml');
    const svg = doc.documentElement;
    if (svg.nodeName !== 'svg' || doc.getElementsByTagName('parsererror').length) throw new Error('the chart is not valid SVG');
    svg.removeAttribute('width');
    svg.removeAttribute('height');
    box.replaceChildren(document.importNode(svg, true));
  }

  function renderOrder(id) {
    const summaryBox = h('div', { id: 'order-summary', class: 'cards' }, h('p', { class: 'muted' }, 'Loading summary…'));
    const chartBox = h('div', { id: 'money-chart', class: 'chart' }, h('p', { class: 'muted' }, 'Loading chart…'));
    const timeline = h('ol', { id: 'timeline', class: 'timeline' });
    const notes = h('div', { id: 'audit-notes' });
    const events = h('div', { id: 'order-events', class: 'events' });
    const parkedBox = h('div', { id: 'parked-banner', class: 'parked-banner', hidden: true });
    const stream = 'order-' + id;
    view().replaceChildren(
      h('h1', {}, 'Order ', h('code', { id: 'order-id' }, id)),
      parkedBox,
      h('p', { class: 'links' },
        h('a', { href: streamHref(stream) }, 'Stream ' + stream),
        h('a', { href: '/api/orders/' + encodeURIComponent(id) + '/audit' }, 'Audit JSON'),
        h('a', { href: '/api/orders/' + encodeURIComponent(id) }, 'Summary JSON'),
        h('a', { href: '/api/orders/' + encodeURIComponent(id) + '/timeline.svg' }, 'Chart SVG')),
      summaryBox,
      h('h2', {}, 'Money'), chartBox,
      h('h2', {}, 'Timeline'), h('p', { class: 'muted small' }, 'Each fact as the fold saw it: status before → after, what it did, and the messages it caused.'),
      timeline, notes,
      h('h2', {}, 'Events'), events);

    let latest = -1; // last revision the audit saw

    // summary draws the read model's row and returns the revision it
    // covers (-1 when the row is missing).
    async function summary() {
      try {
        const s = await getJSON('/api/orders/' + encodeURIComponent(id));
        summaryBox.replaceChildren(
          card('Status', statusChip(s.status), s.previousStatus ? h('span', { class: 'muted small' }, ' was ', s.previousStatus) : null),
          card('Total', money(s.total) + ' ' + info.currency.code),
          card('Captured', money(moneyField(s.money, 'captured'))),
          card('Refunded', money(moneyField(s.money, 'refunded'))),
          card('Charged back', money(moneyField(s.money, 'chargedBack'))),
          card('Net', money(moneyField(s.money, 'net'))),
          card('Facts', s.facts, h('span', { class: 'muted small' }, ` held ${s.held}, ignored ${s.ignored}, flags ${s.flags}`)),
          s.statusReason ? card('Reason', s.statusReason) : null);
        summaryBox.dataset.status = s.status;
        summaryBox.dataset.revision = String(s.revision);
        return s.revision;
      } catch (e) {
        if (e instanceof HttpError && e.status === 404) {
          summaryBox.replaceChildren(h('p', { class: 'muted' }, 'Not in the read model (yet). The audit below reads the stream itself.'));
        } else showError(summaryBox, e);
        return -1;
      }
    }

    // The read model follows the stream a moment later: ask again until it
    // has caught up with what the audit showed.
    async function settle(rev) {
      for (let i = 0; i < 20 && rev < latest; i++) {
        await new Promise((r) => setTimeout(r, 250));
        rev = await summary();
      }
    }

    function card(label, ...value) {
      return h('div', { class: 'card' }, h('div', { class: 'card-label' }, label), h('div', { class: 'card-value' }, ...value));
    }

    async function audit() {
      try {
        const rep = await getJSON('/api/orders/' + encodeURIComponent(id) + '/audit');
        timeline.replaceChildren(...rep.entries.map(timelineEntry));
        timeline.dataset.count = String(rep.entries.length);
        if (rep.entries.length) latest = rep.entries[rep.entries.length - 1].revision;
        const parts = [];
        if (rep.held && rep.held.length) {
          parts.push(h('h3', {}, 'Held'), h('ul', { class: 'held' }, rep.held.map((n) => h('li', {}, `#${n.revision} ${shortType(n.type)}: ${n.reason || ''}`))));
        }
        if (rep.ignored && rep.ignored.length) {
          parts.push(h('h3', {}, 'Ignored'), h('ul', { class: 'ignored' }, rep.ignored.map((n) => h('li', {}, `#${n.revision} ${shortType(n.type)}: ${n.reason || ''}`))));
        }
        notes.replaceChildren(...parts);
      } catch (e) {
        showError(timeline, e);
        timeline.dataset.count = '0';
      }
    }

    async function chart() {
      try { await loadChart(id, chartBox); } catch (e) { showError(chartBox, e); }
    }

    async function evs() {
      try {
        const body = await getJSON('/api/streams/' + encodeURIComponent(stream) + '?limit=200');
        events.replaceChildren(...body.events.map((e) => eventArticle(e, false)));
        if (body.next !== undefined && body.next !== null) {
          events.append(h('p', {}, h('a', { href: streamHref(stream) }, 'All events of the stream')));
        }
      } catch (e) { showError(events, e); }
    }

    async function parked() {
      try {
        const body = await getJSON('/api/parked?orderId=' + encodeURIComponent(id));
        parkedBox.replaceChildren(...(body.parked.length ? parkedBanner(id, body.parked) : []));
        parkedBox.hidden = body.parked.length === 0;
        parkedBox.dataset.lanes = String(body.parked.length);
      } catch (e) {
        // 501: this process parks nothing; other errors must not hide the page.
        parkedBox.hidden = true;
        parkedBox.dataset.lanes = '0';
      }
    }

    async function all() {
      const [rev] = await Promise.all([summary(), audit(), chart(), evs(), parked()]);
      view().dataset.ready = '1';
      await settle(rev);
    }

    // A new fact on this order redraws the page, once a burst has passed.
    let timer = null;
    onTailEvent = (ev) => {
      if (ev.stream !== stream) return;
      clearTimeout(timer);
      timer = setTimeout(all, 400);
    };
    return all();
  }

  // ---- parked lanes ----

  function laneName(kind) {
    return kind === 'accelbyte' ? 'AccelByte events' : kind === 'bookworm' ? 'BookWorm commands' : String(kind);
  }

  // parkedBanner says, on an order's page, which of its lanes are set
  // aside and why.
  function parkedBanner(id, lanes) {
    return [
      h('h2', {}, 'Parked'),
      h('p', {}, 'Some of this order\'s messages are held back; every other order goes on. After a fix: ',
        h('code', {}, 'ledger parked retry ' + id)),
      h('ul', {}, lanes.map((p) => h('li', { class: 'parked-lane', 'data-kind': p.kind, 'data-reason': p.reason },
        h('b', {}, laneName(p.kind)), ' ', h('span', { class: 'parked-reason' }, p.reason),
        ' since ', h('time', { datetime: p.parkedAt || '' }, when(p.parkedAt)),
        p.retries ? h('span', { class: 'muted' }, ` (retried ${p.retries}×)`) : null,
        h('br'),
        h('span', { class: 'muted small' }, `held from revision #${p.fromRevision}: ${p.message || ''} `),
        p.messageId ? h('code', { class: 'message-id small' }, p.messageId) : null,
        p.detail ? h('p', { class: 'parked-detail' }, p.detail) : null))),
    ];
  }

  function renderParked() {
    const tbody = h('tbody');
    const status = h('p', { class: 'muted small', id: 'parked-status' });
    view().replaceChildren(
      h('h1', {}, 'Parked'),
      h('p', { class: 'muted' }, 'Lanes of orders whose messages could not be built or were refused for good. ',
        'Their later messages wait behind them; every other order goes on. ',
        h('code', {}, 'ledger parked retry <orderId>… | --all'), ' publishes them again after a fix.'),
      h('table', { id: 'parked-list', class: 'grid' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Order'), h('th', {}, 'Lane'), h('th', {}, 'Reason'),
          h('th', {}, 'Held message'), h('th', {}, 'Since'), h('th', { class: 'num' }, 'Retries'))),
        tbody),
      status);
    return (async () => {
      try {
        const body = await getJSON('/api/parked');
        for (const p of body.parked) {
          tbody.append(h('tr', { 'data-order': p.orderId, 'data-kind': p.kind },
            h('td', {}, h('a', { href: orderHref(p.orderId) }, p.orderId)),
            h('td', {}, laneName(p.kind)),
            h('td', {}, h('span', { class: 'parked-reason' }, p.reason), p.detail ? h('div', { class: 'muted small' }, p.detail) : null),
            h('td', {}, '#' + p.fromRevision + ' ' + (p.message || '')),
            h('td', {}, when(p.parkedAt)),
            h('td', { class: 'num' }, p.retries)));
        }
        status.textContent = body.lanes === 0 ? 'Nothing is parked.' : `${body.lanes} lane(s) of ${body.orders} order(s)`;
      } catch (e) {
        showError(status, e);
      }
      view().dataset.ready = '1';
    })();
  }

  // ---- dead letters ----

  function renderDeadLetters(params) {
    const queue = params.get('queue') === 'skipped' ? 'skipped' : 'error';
    const counts = h('tbody');
    const list = h('tbody');
    const status = h('p', { class: 'muted small', id: 'dl-status' });
    const tab = (q, label) => h('a', { href: '/ui/deadletters?queue=' + q, class: 'tab', 'aria-current': q === queue ? 'page' : null, 'data-queue': q }, label);
    view().replaceChildren(
      h('h1', {}, 'Dead letters'),
      h('p', { class: 'links' }, tab('error', 'Error queue'), tab('skipped', 'Skipped queue'),
        h('a', { href: '/api/deadletters?queue=' + queue }, 'JSON')),
      h('p', { class: 'muted' }, 'Inbound messages the ledger could not take, left in place. ',
        h('code', {}, 'ledger deadletters show <messageId>'), ' and ', h('code', {}, 'ledger deadletters redrive'), ' act on them.'),
      h('h2', {}, 'By reason'),
      h('table', { id: 'dl-counts', class: 'grid' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Reason'), h('th', { class: 'num' }, 'Messages'))), counts),
      h('h2', {}, 'Messages'),
      h('table', { id: 'dl-list', class: 'grid' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Time'), h('th', {}, 'Reason'), h('th', {}, 'Type'), h('th', {}, 'Message id'), h('th', {}, 'Body'))),
        list),
      status);
    view().dataset.queue = queue;
    return (async () => {
      try {
        const body = await getJSON('/api/deadletters?' + new URLSearchParams({ queue, limit: '200' }));
        for (const c of body.counts) {
          counts.append(h('tr', { 'data-reason': c.reason }, h('td', {}, c.reason || '(none)'), h('td', { class: 'num' }, c.count)));
        }
        for (const m of body.messages) {
          const full = m.bodyEncoding ? m.body : pretty(m.body);
          list.append(h('tr', { class: 'dead-letter', 'data-message-id': m.messageId, 'data-reason': m.reason },
            h('td', {}, when(m.time)),
            h('td', {}, m.reason, m.detail ? h('div', { class: 'muted small' }, m.detail) : null),
            h('td', {}, shortType(m.type) || '–', m.exchange ? h('div', { class: 'muted small' }, 'from ', h('code', {}, m.exchange), m.routingKey ? [' key ', h('code', {}, m.routingKey)] : null) : null),
            h('td', {}, h('code', { class: 'message-id' }, m.messageId || '–')),
            h('td', {}, h('details', {},
              h('summary', {}, h('code', { class: 'preview' }, m.preview), m.size > m.preview.length ? h('span', { class: 'muted small' }, ` … ${m.size} bytes`) : null),
              h('pre', { class: 'json dl-body' }, full),
              m.headers ? [h('h4', {}, 'Headers'), h('pre', { class: 'json dl-headers' }, pretty(m.headers))] : null))));
        }
        const n = body.messages.length;
        status.textContent = n === 0 ? `The ${queue} queue is empty.` : `${n} message(s)${body.more ? ', more in the queue' : ''}`;
      } catch (e) {
        showError(status, e);
      }
      view().dataset.ready = '1';
    })();
  }

  // ---- live tail ----

  function setupTail() {
    const list = document.getElementById('tail');
    const status = document.getElementById('tail-status');
    if (!window.EventSource) {
      status.textContent = 'unsupported';
      return;
    }
    const es = new EventSource('/api/tail?prefix=order-');
    es.onopen = () => { status.textContent = 'live'; status.dataset.state = 'live'; };
    es.onerror = () => { status.textContent = 'reconnecting'; status.dataset.state = 'down'; };
    es.onmessage = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch (e) { return; }
      const oid = orderIdOf(ev.stream);
      const li = h('li', { class: 'tail-event fresh', 'data-event-id': ev.id, 'data-stream': ev.stream },
        h('div', {}, h('span', { class: 'type' }, shortType(ev.type))),
        h('div', { class: 'small' },
          h('a', { href: oid ? orderHref(oid) : streamHref(ev.stream) }, ev.stream), ' #', ev.revision),
        h('div', { class: 'muted small' }, when(ev.created)));
      list.prepend(li);
      setTimeout(() => li.classList.remove('fresh'), 2000);
      while (list.children.length > TAIL_MAX) list.lastElementChild.remove();
      if (onTailEvent) onTailEvent(ev);
    };
    window.addEventListener('pagehide', () => es.close());
  }

  // ---- routing ----

  async function route() {
    const path = window.location.pathname;
    const params = new URLSearchParams(window.location.search);
    let m;
    if (path === '/' || path === '/ui/' || path === '/ui/streams' || path === '/ui/streams/') {
      document.body.dataset.page = 'streams';
      return renderHome(params);
    }
    if (path === '/ui/orders' || path === '/ui/orders/') {
      document.body.dataset.page = 'orders';
      return renderOrders();
    }
    if (path === '/ui/parked' || path === '/ui/parked/') {
      document.body.dataset.page = 'parked';
      document.title = 'Parked · Ledger';
      return renderParked();
    }
    if (path === '/ui/deadletters' || path === '/ui/deadletters/') {
      document.body.dataset.page = 'deadletters';
      document.title = 'Dead letters · Ledger';
      return renderDeadLetters(params);
    }
    if ((m = /^\/ui\/orders\/([^/]+)$/.exec(path))) {
      const id = decodeURIComponent(m[1]);
      document.body.dataset.page = 'order';
      if (!UUID.test(id)) {
        view().replaceChildren(h('p', { class: 'error' }, 'Not an order id: ', h('code', {}, id)));
        return undefined;
      }
      document.title = 'Order ' + id.toLowerCase() + ' · Ledger';
      document.getElementById('search-input').value = id.toLowerCase();
      return renderOrder(id.toLowerCase());
    }
    if ((m = /^\/ui\/streams\/([^/]+)$/.exec(path))) {
      const name = decodeURIComponent(m[1]);
      document.body.dataset.page = 'stream';
      if (!STREAM.test(name)) {
        view().replaceChildren(h('p', { class: 'error' }, 'Not a stream name: ', h('code', {}, name)));
        return undefined;
      }
      document.title = name + ' · Ledger';
      return renderStream(name, params);
    }
    document.body.dataset.page = 'missing';
    view().replaceChildren(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '/' }, 'Back to the streams')));
    return undefined;
  }

  async function start() {
    setupSearch();
    try { info = await getJSON('/api/info'); } catch (e) { /* keep defaults */ }
    setupTail();
    await route();
  }

  document.addEventListener('DOMContentLoaded', start);
}());
