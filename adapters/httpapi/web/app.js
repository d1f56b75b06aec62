// Ledger stream browser. Read-only. Every text from the server goes into
// the page through textContent or attributes, never as HTML. Each view is
// a page of its own with its state in the URL, so links, reloads and the
// back button work.
'use strict';

(function () {
  const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
  const STREAM = /^[A-Za-z0-9._:@$-]{1,200}$/;
  const TAIL_MAX = 100;
  const PREV_MAX = 50; // pages the orders list remembers for "Previous"
  const SORTS = [['id', 'Order id'], ['activity', 'Last activity, newest first'], ['amount', 'Amount, largest first']];
  const MONEY = [['captured', 'Captured'], ['refunded', 'Refunded'], ['chargedBack', 'Charged back'], ['reversed', 'Reversed'], ['net', 'Net']];

  let info = { currency: { code: 'USD', decimals: 2 }, statuses: [], index: false };
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
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  // fill replaces el's children the way h adds them (arrays flattened,
  // null and false left out).
  function fill(el, ...children) {
    el.replaceChildren();
    return append(el, children);
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

  function is404(e) { return e instanceof HttpError && e.status === 404; }

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

  // statusChip names a status; a long one may break after an underscore
  // (CHARGEBACK_<wbr>REVERSED) rather than run out of its box.
  function statusChip(s) {
    const name = s || 'none';
    const parts = name.split('_');
    return h('span', { class: 'status', 'data-status': name },
      parts.map((p, i) => (i < parts.length - 1 ? [p + '_', h('wbr')] : p)));
  }

  function orderHref(id) { return '/ui/orders/' + encodeURIComponent(id); }
  function streamHref(name) { return '/ui/streams/' + encodeURIComponent(name); }
  function ordersHref(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
      else if (v !== undefined && v !== null && v !== '') q.set(k, v);
    }
    const s = q.toString();
    return '/ui/orders' + (s ? '?' + s : '');
  }
  function orderIdOf(stream) {
    const m = /^order-(.+)$/.exec(stream || '');
    return m && UUID.test(m[1]) ? m[1].toLowerCase() : null;
  }
  // isIdPrefix: the start of a canonical UUID (hex digits, dashes where
  // a UUID has them).
  function isIdPrefix(s) {
    if (!s || s.length > 36) return false;
    for (let i = 0; i < s.length; i++) {
      const dash = i === 8 || i === 13 || i === 18 || i === 23;
      if (dash ? s[i] !== '-' : !/[0-9a-fA-F]/.test(s[i])) return false;
    }
    return true;
  }

  function pretty(v) {
    try { return JSON.stringify(v, null, 2); } catch (e) { return String(v); }
  }

  // Totals may be encoded with Go field names or lower-case ones.
  function moneyField(m, name) {
    if (!m) return undefined;
    const cap = name.charAt(0).toUpperCase() + name.slice(1);
    return m[name] !== undefined ? m[name] : m[cap];
  }

  function view() { return document.getElementById('view'); }

  function errorText(err) {
    return err instanceof HttpError ? `${err.status}: ${err.message}` : String(err.message || err);
  }

  function showError(where, err) {
    where.replaceChildren(h('p', { class: 'error', role: 'alert' }, errorText(err)));
  }

  function ready() { view().dataset.ready = '1'; }

  function setTitle(t) { document.title = t + ' · Ledger'; }

  // notice replaces the whole view with one message: a missing order or
  // stream is said once, not by every box that could not load.
  function notice(id, title, ...body) {
    view().replaceChildren(h('div', { id, class: 'notice' }, h('h1', {}, title), ...body));
    ready();
  }

  function th(label, cls) { return h('th', { scope: 'col', class: cls }, label); }

  function card(label, ...value) {
    return h('div', { class: 'card', 'data-card': label.toLowerCase().replace(/ /g, '-') },
      h('div', { class: 'card-label' }, label), h('div', { class: 'card-value' }, ...value));
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
      else if (isIdPrefix(q)) target = ordersHref({ prefix: q.toLowerCase() });
      else if (STREAM.test(q)) target = streamHref(q);
      if (!target) {
        errEl.textContent = 'Enter an order id (a UUID such as 3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a10), its first characters, or a stream name.';
        errEl.hidden = false;
        input.focus();
        return;
      }
      window.location.assign(target);
    });
  }

  function markNav(page) {
    for (const a of document.querySelectorAll('.nav a')) {
      if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  // ---- orders table (overview, list, partial id) ----

  function ordersTable(id, caption, rows) {
    const tbody = h('tbody');
    for (const o of rows) tbody.append(orderRow(o));
    return h('table', { id, class: 'grid orders' },
      caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
      h('thead', {}, h('tr', {}, th('Order'), th('Status'), th('Total', 'num'), th('Net', 'num'), th('Facts', 'num'), th('Last fact'))),
      tbody);
  }

  function orderRow(o) {
    return h('tr', { 'data-order': o.orderId, 'data-status': o.status, 'data-total': o.total },
      h('td', {}, h('a', { href: orderHref(o.orderId), class: 'order-link' }, h('code', {}, o.orderId))),
      h('td', {}, statusChip(o.status)),
      h('td', { class: 'num' }, money(o.total)),
      h('td', { class: 'num' }, money(moneyField(o.money, 'net'))),
      h('td', { class: 'num' }, o.facts),
      h('td', {}, h('time', { datetime: o.lastAt || '' }, when(o.lastAt))));
  }

  // ---- overview (home) ----

  function renderOverview() {
    setTitle('Overview');
    const box = h('div', { id: 'overview' }, h('p', { class: 'muted' }, 'Loading…'));
    view().replaceChildren(h('h1', {}, 'Overview'), box);

    async function draw() {
      let o;
      try {
        o = await getJSON('/api/overview');
      } catch (e) {
        if (e instanceof HttpError && e.status === 501) {
          box.replaceChildren(h('p', { id: 'overview-missing', class: 'notice-inline' },
            'The overview needs the order index, which this process does not have. ',
            h('a', { href: '/ui/orders' }, 'All orders'), ' and ', h('a', { href: '/ui/streams' }, 'all streams'), ' still work.'));
        } else showError(box, e);
        ready();
        return;
      }
      fill(box,
        h('p', { class: 'muted small', id: 'overview-asof' }, `${o.orders} orders in the read model. Today is ${o.today} (UTC).`),
        statusSection(o), moneySection(o), recentSection(o), healthSection(o));
      box.dataset.orders = String(o.orders);
      ready();
    }

    // New facts change the figures: draw again once a burst has passed,
    // at most every few seconds, keeping the keyboard focus where it was.
    let timer = null;
    let last = 0;
    async function redraw() {
      const a = document.activeElement;
      const href = a && box.contains(a) ? a.getAttribute('href') : null;
      last = Date.now();
      await draw();
      if (href) {
        const again = [...box.querySelectorAll('a[href]')].find((x) => x.getAttribute('href') === href);
        if (again) again.focus();
      }
    }
    onTailEvent = () => {
      clearTimeout(timer);
      timer = setTimeout(redraw, Math.max(800, last + 3000 - Date.now()));
    };
    last = Date.now();
    return draw();
  }

  function statusSection(o) {
    const list = h('ul', { id: 'status-counts', class: 'tiles' },
      h('li', {}, h('a', { class: 'tile', href: '/ui/orders', 'data-status': 'all' },
        h('span', { class: 'tile-count' }, o.orders), h('span', { class: 'tile-label' }, 'All orders'))));
    for (const s of o.byStatus) {
      list.append(h('li', {}, h('a', { class: 'tile' + (s.count ? '' : ' empty'), href: ordersHref({ status: s.status }), 'data-status': s.status },
        h('span', { class: 'tile-count' }, s.count), statusChip(s.status))));
    }
    if (o.noCheckout) {
      list.append(h('li', {}, h('div', { class: 'tile', 'data-status': 'none' },
        h('span', { class: 'tile-count' }, o.noCheckout), h('span', { class: 'tile-label' }, 'Facts before their checkout'))));
    }
    return h('section', { 'aria-labelledby': 'h-status' }, h('h2', { id: 'h-status' }, 'Orders by status'), list);
  }

  function moneySection(o) {
    const row = (period, label, t, orders) => h('tr', { 'data-period': period },
      h('th', { scope: 'row' }, label),
      MONEY.map(([k]) => h('td', { class: 'num', 'data-field': k }, money(moneyField(t, k)))),
      h('td', { class: 'num', 'data-field': 'orders' }, orders === undefined ? '' : orders));
    return h('section', { 'aria-labelledby': 'h-money' }, h('h2', { id: 'h-money' }, 'Money'),
      h('table', { id: 'money-overview', class: 'grid money-overview' },
        h('caption', { class: 'muted small' }, `In ${info.currency.code}. Today: the money of the facts dated ${o.today}, and the orders checked out that day.`),
        h('thead', {}, h('tr', {}, h('td', {}), MONEY.map(([, label]) => th(label, 'num')), th('Orders', 'num'))),
        h('tbody', {}, row('today', 'Today', o.money.today, o.money.todayOrders), row('all', 'All time', o.money.all, o.orders))));
  }

  function recentSection(o) {
    return h('section', { 'aria-labelledby': 'h-recent' }, h('h2', { id: 'h-recent' }, 'Recent activity'),
      o.recent.length ? ordersTable('recent-orders', 'The most recently active orders', o.recent) : h('p', { class: 'muted' }, 'No orders yet.'),
      h('p', {}, h('a', { href: ordersHref({ sort: 'activity' }), id: 'recent-all' }, 'All orders by last activity')));
  }

  function unavailable(sec) {
    if (!sec.available) return h('p', { class: 'muted' }, 'Not available in this process.');
    if (sec.error) return h('p', { class: 'error' }, 'Not known just now: ' + sec.error + '.');
    return null;
  }

  function healthSection(o) {
    const lag = h('div', { class: 'card health', id: 'lag' }, h('h3', {}, 'Projection lag'));
    const lagMissing = unavailable(o.lag);
    if (lagMissing) lag.append(lagMissing);
    else {
      lag.append(h('ul', { class: 'plain' }, o.lag.projections.map((p) => h('li', { 'data-projection': p.name, 'data-behind': p.behind },
        h('b', {}, p.name), ': ', p.behind === 0 ? h('span', { class: 'good' }, 'up to date') : h('span', { class: 'warn' }, `${p.behind} log positions behind`)))));
    }
    const dl = h('div', { class: 'card health', id: 'dead-letter-counts' }, h('h3', {}, 'Dead letters'));
    const dlMissing = unavailable(o.deadLetters);
    if (dlMissing) dl.append(dlMissing, h('p', {}, h('a', { href: '/ui/deadletters' }, 'Dead-letter queues')));
    else {
      dl.append(h('ul', { class: 'plain' }, o.deadLetters.queues.map((q) => h('li', { 'data-queue': q.queue, 'data-count': q.count },
        h('a', { href: '/ui/deadletters?queue=' + encodeURIComponent(q.queue) }, `${q.queue} queue`), ': ',
        h('span', { class: q.count ? 'warn' : 'good' }, q.count === 1 ? '1 message' : `${q.count} messages`)))));
    }
    const pk = h('div', { class: 'card health', id: 'parked-count' }, h('h3', {}, 'Parked orders'));
    const pkMissing = unavailable(o.parked);
    if (pkMissing) pk.append(pkMissing);
    else {
      pk.dataset.orders = String(o.parked.orders);
      pk.append(h('p', {}, h('a', { href: '/ui/parked' }, o.parked.orders === 1 ? '1 order' : `${o.parked.orders} orders`),
        h('span', { class: 'muted' }, ` (${o.parked.lanes} lane${o.parked.lanes === 1 ? '' : 's'})`),
        o.parked.orders ? h('span', { class: 'warn' }, ' waiting for a retry') : h('span', { class: 'good' }, ' – nothing held back')));
    }
    return h('section', { 'aria-labelledby': 'h-health' }, h('h2', { id: 'h-health' }, 'Projections, dead letters, parked'),
      h('div', { class: 'cards health-cards' }, lag, dl, pk));
  }

  // ---- streams ----

  function renderStreams(params) {
    setTitle('Streams');
    const prefix = params.get('prefix') ?? 'order-';
    const tbody = h('tbody');
    const more = h('button', { id: 'streams-more', class: 'button', type: 'button', hidden: true }, 'More streams');
    const status = h('p', { class: 'muted small', id: 'streams-status', role: 'status' });
    const prefixInput = h('input', { id: 'prefix-input', name: 'prefix', value: prefix, maxlength: 200, spellcheck: 'false' });
    view().replaceChildren(
      h('h1', {}, 'Streams'),
      h('form', { id: 'prefix-form', class: 'inline-form', method: 'get', action: '/ui/streams' },
        h('label', { for: 'prefix-input' }, 'Name starts with '), prefixInput, h('button', { class: 'button', type: 'submit' }, 'List')),
      h('table', { id: 'streams-list', class: 'grid' },
        h('thead', {}, h('tr', {}, th('Stream'), th('Order'), th('Events', 'num'), th('Last revision', 'num'))),
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
            h('td', {}, oid ? h('a', { href: orderHref(oid), class: 'order-link', 'aria-label': 'Order ' + oid }, 'order') : '–'),
            h('td', { class: 'num' }, s.count),
            h('td', { class: 'num' }, s.lastRevision)));
        }
        after = body.next || '';
        more.hidden = !after;
        status.textContent = tbody.rows.length === 0 ? 'No streams with that prefix yet.' : `${tbody.rows.length} shown`;
        ready();
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

  // ---- orders list: filter, sort, search, pages ----

  function renderOrders(params) {
    setTitle('Orders');
    const status = (params.get('status') || '').toUpperCase();
    const sort = params.get('sort') || 'id';
    const prefix = (params.get('prefix') || '').toLowerCase();
    const cursor = params.get('cursor') || '';
    const prev = params.getAll('prev').slice(-PREV_MAX);
    const limit = params.get('limit') || '';
    const base = { status, sort: sort === 'id' ? '' : sort, prefix, limit };
    const tableBox = h('div', { id: 'orders-box' }, h('p', { class: 'muted' }, 'Loading…'));
    const statusLine = h('p', { class: 'muted small', id: 'orders-status', role: 'status' });
    const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of orders' });

    const form = h('form', { id: 'orders-filter', class: 'filters', method: 'get', action: '/ui/orders' });
    if (info.index) {
      const statusSel = h('select', { id: 'filter-status', name: 'status' }, h('option', { value: '' }, 'Any status'),
        (info.statuses || []).map((s) => h('option', { value: s, selected: s === status }, s)));
      const sortSel = h('select', { id: 'filter-sort', name: 'sort' },
        SORTS.map(([v, label]) => h('option', { value: v, selected: v === sort }, label)));
      const prefixIn = h('input', { id: 'filter-prefix', name: 'prefix', value: prefix, maxlength: 36, spellcheck: 'false', autocomplete: 'off', placeholder: 'e.g. 3f2c6a8e' });
      append(form, [
        h('div', { class: 'field' }, h('label', { for: 'filter-status' }, 'Status'), statusSel),
        h('div', { class: 'field' }, h('label', { for: 'filter-sort' }, 'Sort by'), sortSel),
        h('div', { class: 'field' }, h('label', { for: 'filter-prefix' }, 'Order id starts with'), prefixIn),
        limit ? h('input', { type: 'hidden', name: 'limit', value: limit }) : null,
        h('div', { class: 'field' }, h('button', { class: 'button', type: 'submit', id: 'filter-apply' }, 'Show orders')),
        (status || prefix || sort !== 'id') ? h('div', { class: 'field' }, h('a', { href: '/ui/orders', id: 'filter-clear' }, 'Clear filters')) : null]);
      // Empty fields stay out of the URL.
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        window.location.assign(ordersHref({ status: statusSel.value, sort: sortSel.value === 'id' ? '' : sortSel.value, prefix: prefixIn.value.trim().toLowerCase(), limit }));
      });
    } else {
      append(form, [h('p', { class: 'muted' }, 'In order-id order. Filtering and sorting need the order index, which this process does not have.')]);
    }
    view().replaceChildren(h('h1', {}, 'Orders'), form, tableBox, statusLine, pager);

    return (async () => {
      const q = new URLSearchParams();
      if (info.index) {
        if (status) q.set('status', status);
        if (sort !== 'id') q.set('sort', sort);
        if (prefix) q.set('prefix', prefix);
        if (cursor) q.set('cursor', cursor);
      } else if (params.get('after')) q.set('after', params.get('after'));
      if (limit) q.set('limit', limit);
      let body;
      try {
        body = await getJSON('/api/orders?' + q);
      } catch (e) {
        showError(tableBox, e);
        ready();
        return;
      }
      const what = [status ? `in ${status}` : '', prefix ? `whose id starts with ${prefix}` : ''].filter(Boolean).join(' ');
      tableBox.replaceChildren(body.orders.length
        ? ordersTable('orders-list', 'Orders' + (what ? ' ' + what : ''), body.orders)
        : h('p', { id: 'orders-empty' }, cursor ? 'No more orders.' : `No orders ${what || 'in the read model yet'}.`));
      const pageNo = prev.length + 1;
      statusLine.textContent = `Page ${pageNo}: ${body.orders.length} order${body.orders.length === 1 ? '' : 's'}` + (what ? ' ' + what : '');
      view().dataset.page = String(pageNo);
      const link = (id, label, href) => href
        ? h('a', { id, href, class: 'button', rel: id === 'orders-next' ? 'next' : 'prev' }, label)
        : h('span', { id, class: 'button disabled', 'aria-disabled': 'true' }, label);
      let prevHref = null;
      let nextHref = null;
      if (info.index) {
        if (cursor) prevHref = ordersHref({ ...base, cursor: prev[prev.length - 1] || '', prev: prev.slice(0, -1) });
        if (body.next) nextHref = ordersHref({ ...base, cursor: body.next, prev: [...prev, cursor] });
      } else if (body.next) nextHref = ordersHref({ after: body.next, limit });
      fill(pager, link('orders-prev', '← Previous', prevHref), h('span', { class: 'muted small' }, `Page ${pageNo}`), link('orders-next', 'Next →', nextHref),
        pageNo > 2 ? h('a', { href: ordersHref(base), id: 'orders-first' }, 'First page') : null);
      ready();
    })();
  }

  // ---- one event ----

  // eventArticle shows one event; level is the heading level of its
  // Data and Metadata parts (under the page's headings).
  function eventArticle(e, open, level) {
    const hn = 'h' + (level || 3);
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
          h('section', {}, h(hn, { class: 'sub' }, 'Data', e.dataEncoding ? ` (${e.dataEncoding})` : ''), h('pre', { class: 'json event-data', tabindex: '0' }, data)),
          h('section', {}, h(hn, { class: 'sub' }, 'Metadata', e.metadataEncoding ? ` (${e.metadataEncoding})` : ''), h('pre', { class: 'json event-metadata', tabindex: '0' }, meta)))));
  }

  // ---- stream page ----

  function renderStream(name, params) {
    setTitle(name);
    const backwards = params.get('dir') === 'backwards';
    const list = h('div', { id: 'stream-events', class: 'events' });
    const more = h('button', { id: 'events-more', class: 'button', type: 'button', hidden: true }, 'More events');
    const status = h('p', { class: 'muted small', role: 'status' });
    const oid = orderIdOf(name);
    const q = new URLSearchParams(params);
    q.set('dir', backwards ? 'forwards' : 'backwards');
    view().replaceChildren(
      h('h1', {}, 'Stream ', h('code', {}, name)),
      h('p', { class: 'links' },
        oid ? h('a', { href: orderHref(oid), id: 'to-order' }, 'Order ' + oid + ': money and timeline') : null,
        h('a', { href: streamHref(name) + '?' + q }, backwards ? 'Oldest first' : 'Newest first'),
        h('a', { href: '/api/streams/' + encodeURIComponent(name) }, 'JSON')),
      list, status, more);
    let from = backwards ? 'end' : '0';
    async function page() {
      more.disabled = true;
      try {
        const qs = new URLSearchParams({ from, limit: '50', dir: backwards ? 'backwards' : 'forwards' });
        const body = await getJSON('/api/streams/' + encodeURIComponent(name) + '?' + qs);
        for (const e of body.events) list.append(eventArticle(e, true, 2));
        more.hidden = body.next === undefined || body.next === null;
        if (!more.hidden) from = String(body.next);
        status.textContent = `${list.children.length} event(s) shown`;
        ready();
      } catch (e) {
        if (is404(e) && list.children.length === 0) {
          notice('stream-missing', 'No stream ' + name,
            h('p', {}, 'The log has no stream named ', h('code', {}, name), '.'),
            oid ? h('p', {}, 'So the ledger has no facts for order ', h('code', {}, oid), '.') : null,
            h('p', {}, h('a', { href: '/ui/streams' }, 'All streams')));
          return;
        }
        showError(status, e);
      } finally {
        more.disabled = false;
      }
    }
    more.addEventListener('click', page);
    onTailEvent = (ev) => {
      if (ev.stream === name && !backwards && more.hidden) list.append(eventArticle(ev, true, 2));
    };
    return page();
  }

  // ---- order page ----

  function moneyTable(totals, caption) {
    const f = (n) => money(moneyField(totals, n));
    return h('table', { class: 'money' }, caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, MONEY.map(([, label]) => h('th', { scope: 'col' }, label.toLowerCase())))),
      h('tbody', {}, h('tr', {}, MONEY.map(([k]) => h('td', {}, f(k))))));
  }

  // postingsTable is a fact's journal entry: each posting on its side.
  function postingsTable(ps) {
    return h('table', { class: 'money postings' }, h('caption', {}, 'journal entry'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', class: 'account' }, 'account'), h('th', { scope: 'col' }, 'debit'), h('th', { scope: 'col' }, 'credit'))),
      h('tbody', {}, ps.map((p) => h('tr', { class: 'posting', 'data-account': p.account, 'data-side': p.side },
        h('td', { class: 'account' }, h('code', {}, p.account)),
        h('td', {}, p.side === 'debit' ? money(p.amount) : ''),
        h('td', {}, p.side === 'credit' ? money(p.amount) : '')))));
  }

  function isZero(t) {
    return !t || MONEY.every(([k]) => !moneyField(t, k));
  }

  // timelineEntry shows one fact. Its status changes are listed once:
  // each transition it caused (a fact that releases held facts causes
  // several), or that the status stayed.
  function timelineEntry(e) {
    const disp = e.disposition || (e.error ? 'undecodable' : 'unknown');
    const li = h('li', { class: 'timeline-entry', 'data-revision': e.revision, 'data-disposition': disp, 'data-status-after': e.statusAfter || '' },
      h('div', { class: 'entry-head' },
        h('span', { class: 'rev' }, '#' + e.revision), ' ',
        h('span', { class: 'type', title: e.type }, shortType(e.type)), ' ',
        h('span', { class: 'disposition', 'data-disposition': disp }, disp),
        h('time', { datetime: e.at || '' }, when(e.at))),
      e.reason ? h('p', { class: 'reason' }, e.reason) : null);
    if (e.transitions && e.transitions.length) {
      li.append(h('ul', { class: 'transitions', 'aria-label': 'Status changes' }, e.transitions.map((t) =>
        h('li', { class: 'transition', 'data-from': t.from || 'none', 'data-to': t.to },
          statusChip(t.from), h('span', { class: 'arrow' }, ' → '), h('span', { class: 'visually-hidden' }, 'to '), statusChip(t.to),
          t.reason ? h('span', { class: 'muted' }, ' ' + t.reason) : null))));
    } else {
      li.append(h('p', { class: 'status-change muted small' }, 'Status stays ', statusChip(e.statusAfter)));
    }
    if (!isZero(e.delta)) li.append(moneyTable(e.delta, 'change'));
    li.append(moneyTable(e.totals, 'totals after'));
    if (e.postings && e.postings.length) li.append(postingsTable(e.postings));
    if (e.flags && e.flags.length) {
      li.append(h('ul', { class: 'flags' }, e.flags.map((f) => h('li', {}, '⚑ ', f))));
    }
    if (e.outbound && e.outbound.length) {
      li.append(h('div', { class: 'outbound' }, h('h3', { class: 'sub' }, 'Messages sent'),
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

  async function loadChart(id, box, query) {
    return loadSVG('/api/orders/' + encodeURIComponent(id) + '/timeline.svg' + (query || ''), box);
  }

  // loadSVG puts the server's picture into box as SVG, not as an image, so
  // its hover titles work and tests can read it.
  async function loadSVG(url, box) {
    const r = await fetch(url);
    if (!r.ok) {
      let msg = r.statusText;
      try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
      throw new HttpError(r.status, msg);
    }
    const doc = new DOMParser().parseFromString(await r.text(), 'image/svg+xml');
    const svg = doc.documentElement;
    if (svg.nodeName !== 'svg' || doc.getElementsByTagName('parsererror').length) throw new Error('the chart is not valid SVG');
    svg.removeAttribute('width');
    svg.removeAttribute('height');
    box.replaceChildren(document.importNode(svg, true));
  }

  // renderPartialId answers /ui/orders/<the start of an id>: the orders
  // whose id starts with it.
  async function renderPartialId(prefix) {
    setTitle('Orders starting ' + prefix);
    if (!info.index) {
      notice('partial-id', 'Not a whole order id',
        h('p', {}, h('code', {}, prefix), ' is only the start of an order id, and this process cannot search by prefix. ',
          h('a', { href: '/ui/orders' }, 'All orders')));
      return;
    }
    let body;
    try {
      body = await getJSON('/api/orders?' + new URLSearchParams({ prefix, limit: '20' }));
    } catch (e) {
      notice('partial-id', 'Orders whose id starts with ' + prefix, h('p', { class: 'error', role: 'alert' }, errorText(e)));
      return;
    }
    const n = body.orders.length;
    notice('partial-id', 'Orders whose id starts with ' + prefix,
      h('p', { id: 'partial-summary' }, n === 0
        ? ['No order id starts with ', h('code', {}, prefix), '.']
        : ['That is not a whole order id. ', n === 1 ? 'One order starts with it:' : (body.next ? `The first ${n} orders that start with it:` : `${n} orders start with it:`)]),
      n ? ordersTable('partial-matches', 'Orders whose id starts with ' + prefix, body.orders) : null,
      body.next ? h('p', {}, h('a', { href: ordersHref({ prefix }), id: 'partial-all' }, 'All of them in the orders list')) : null,
      h('p', {}, h('a', { href: '/ui/orders' }, 'All orders')));
    view().dataset.matches = String(n);
  }

  function renderMissingOrder(id) {
    setTitle('No order ' + id);
    notice('order-missing', 'No order ' + id,
      h('p', {}, 'The ledger has no facts for this order: no stream ', h('code', {}, 'order-' + id), ' and no row in the read model. ',
        'Check the id, or look for it by its first characters in the search box.'),
      h('p', {}, h('a', { href: ordersHref({ prefix: id.slice(0, 8) }) }, 'Orders whose id starts with ' + id.slice(0, 8)), ' · ',
        h('a', { href: ordersHref({ sort: 'activity' }) }, 'Recently active orders')));
  }

  // asOfForm picks the moment a page shows the ledger as of; empty
  // shows it now. href(value) is where a value leads.
  function asOfForm(asOf, href, what) {
    const input = h('input', { id: 'asof-input', name: 'as_of', value: asOf, maxlength: 40, spellcheck: 'false', autocomplete: 'off',
      placeholder: 'e.g. 2025-11-20 or 2025-11-20T15:04:05Z', 'aria-describedby': 'asof-help' });
    const form = h('form', { id: 'asof-form', class: 'filters asof-form', method: 'get', action: href('') },
      h('div', { class: 'field' }, h('label', { for: 'asof-input' }, 'As of'), input),
      h('div', { class: 'field' }, h('button', { class: 'button', type: 'submit', id: 'asof-apply' }, 'Show as of then')),
      asOf ? h('div', { class: 'field' }, h('a', { href: href(''), id: 'asof-clear' }, 'Show now')) : null,
      h('p', { id: 'asof-help', class: 'muted small asof-help' }, `${what} as the ledger knew it then: only the facts recorded by that time `,
        '(a date alone means the end of that UTC day), folded with today\'s rules.'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      window.location.assign(href(input.value.trim()));
    });
    return form;
  }

  function orderAsOfHref(id, asOf) {
    return orderHref(id) + (asOf ? '?' + new URLSearchParams({ as_of: asOf }) : '');
  }

  // thenAndNow sets the order as of a moment beside the order now.
  function thenAndNow(asOf, then, now) {
    const row = (key, label, s) => h('tr', { 'data-when': key },
      h('th', { scope: 'row' }, label),
      h('td', {}, s ? statusChip(s.status) : '–'),
      MONEY.map(([k]) => h('td', { class: 'num', 'data-field': k }, s ? money(moneyField(s.money, k)) : '–')),
      h('td', { class: 'num', 'data-field': 'facts' }, s ? s.facts : '–'));
    return h('table', { id: 'asof-compare', class: 'grid money-overview' },
      h('caption', { class: 'muted small' }, `As reported then and as the ledger has it now, in ${info.currency.code}.`),
      h('thead', {}, h('tr', {}, h('td', {}), th('Status'), MONEY.map(([, label]) => th(label, 'num')), th('Facts', 'num'))),
      h('tbody', {}, row('then', 'As of ' + asOf, then), row('now', 'Now', now)));
  }

  async function renderOrder(id, params) {
    setTitle('Order ' + id);
    const stream = 'order-' + id;
    const asOf = ((params && params.get('as_of')) || '').trim();
    const asOfQ = asOf ? '?' + new URLSearchParams({ as_of: asOf }) : '';
    const auditURL = '/api/orders/' + encodeURIComponent(id) + '/audit' + asOfQ;
    const summaryURL = '/api/orders/' + encodeURIComponent(id) + asOfQ;
    const nowURL = '/api/orders/' + encodeURIComponent(id);
    const [first, firstSum, firstNow] = await Promise.allSettled([getJSON(auditURL), getJSON(summaryURL), asOf ? getJSON(nowURL) : null]);
    if (asOf && first.status === 'rejected' && first.reason instanceof HttpError && first.reason.status === 400) {
      setTitle('Not a moment');
      notice('asof-bad', 'Not a moment', h('p', { class: 'error' }, first.reason.message),
        asOfForm('', (v) => orderAsOfHref(id, v), 'The order'), h('p', {}, h('a', { href: orderHref(id) }, 'The order now')));
      return undefined;
    }
    if (asOf && first.status === 'rejected' && is404(first.reason)) {
      setTitle('Order ' + id + ' as of ' + asOf);
      notice('asof-none', 'No facts of order ' + id + ' by ' + asOf,
        h('p', {}, 'The ledger had recorded no fact of this order by then.'),
        asOfForm(asOf, (v) => orderAsOfHref(id, v), 'The order'),
        h('p', {}, h('a', { href: orderHref(id), id: 'asof-now' }, 'The order now')));
      return undefined;
    }
    if (first.status === 'rejected' && is404(first.reason) && firstSum.status === 'rejected') {
      renderMissingOrder(id);
      return undefined;
    }
    // As of a moment, the events shown are the ones the audit folded.
    const folded = asOf && first.status === 'fulfilled' ? new Set(first.value.entries.map((e) => e.revision)) : null;

    const summaryBox = h('div', { id: 'order-summary', class: 'cards' });
    const chartBox = h('div', { id: 'money-chart', class: 'chart' }, h('p', { class: 'muted' }, 'Loading chart…'));
    const timeline = h('ol', { id: 'timeline', class: 'timeline', 'aria-labelledby': 'h-timeline' });
    const notes = h('div', { id: 'audit-notes' });
    const events = h('div', { id: 'order-events', class: 'events' });
    const parkedBox = h('div', { id: 'parked-banner', class: 'parked-banner', hidden: true });
    let asOfBox = null;
    if (asOf) {
      const then = firstSum.status === 'fulfilled' ? firstSum.value : null;
      const now = firstNow.status === 'fulfilled' ? firstNow.value : null;
      const later = then && now ? Math.max(0, now.facts - then.facts) : null;
      asOfBox = h('section', { id: 'asof-banner', class: 'asof-banner', 'aria-labelledby': 'h-asof', 'data-as-of': then ? then.asOf : asOf },
        h('h2', { id: 'h-asof' }, 'As of ', h('time', { datetime: then ? then.asOf : '' }, then ? when(then.asOf) : asOf)),
        h('p', {}, then ? `${then.facts} fact${then.facts === 1 ? '' : 's'} recorded by then` : 'The facts recorded by then',
          later === null ? '' : later === 0 ? '; none since.' : `; ${later} recorded since ${later === 1 ? 'is' : 'are'} left out.`,
          ' ', h('a', { href: orderHref(id), id: 'asof-now' }, 'The order now')),
        thenAndNow(asOf, then, now));
    }
    view().replaceChildren(
      h('h1', {}, 'Order ', h('code', { id: 'order-id' }, id)),
      parkedBox,
      h('p', { class: 'links' },
        h('a', { href: streamHref(stream), id: 'to-stream' }, 'Stream ' + stream + ': every event'),
        h('a', { href: auditURL }, 'Audit JSON'),
        h('a', { href: summaryURL }, 'Summary JSON'),
        h('a', { href: '/api/orders/' + encodeURIComponent(id) + '/timeline.svg' + asOfQ }, 'Chart SVG')),
      asOfForm(asOf, (v) => orderAsOfHref(id, v), 'The order'),
      asOfBox,
      h('section', { 'aria-labelledby': 'h-summary' }, h('h2', { id: 'h-summary', class: 'visually-hidden' }, 'Summary'), summaryBox),
      h('section', { 'aria-labelledby': 'h-chart' }, h('h2', { id: 'h-chart' }, 'Money over the facts'),
        h('p', { class: 'muted small' }, 'Step lines: each value holds until the next fact. Lines with equal values run side by side; the legend gives the final figures.'),
        chartBox),
      h('section', { 'aria-labelledby': 'h-timeline' }, h('h2', { id: 'h-timeline' }, 'Timeline'),
        h('p', { class: 'muted small' }, 'Each fact as the fold saw it: what it did, the status changes it caused, the money after it and the messages it sent.'),
        timeline, notes),
      h('section', { 'aria-labelledby': 'h-events' }, h('h2', { id: 'h-events' }, 'Events'), events));

    let latest = -1; // last revision the audit saw

    function drawSummary(s) {
      fill(summaryBox,
        card('Status', statusChip(s.status), s.previousStatus ? h('span', { class: 'muted small was' }, 'was ', s.previousStatus) : null),
        card('Total', money(s.total) + ' ' + info.currency.code),
        MONEY.map(([k, label]) => card(label, h('span', { 'data-money': k }, money(moneyField(s.money, k))))),
        card('Facts', s.facts, h('span', { class: 'muted small' }, ` held ${s.held}, ignored ${s.ignored}, flags ${s.flags}`)),
        s.statusReason ? card('Reason', s.statusReason) : null);
      summaryBox.dataset.status = s.status;
      summaryBox.dataset.revision = String(s.revision);
    }

    // summary draws the read model's row and returns the revision it
    // covers (-1 when the row is missing).
    async function summary(pre) {
      try {
        const s = pre || await getJSON(summaryURL);
        drawSummary(s);
        return s.revision;
      } catch (e) {
        if (is404(e)) {
          summaryBox.replaceChildren(h('p', { class: 'muted' }, 'Not in the read model yet; the timeline below reads the stream itself.'));
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

    async function audit(pre) {
      try {
        const rep = pre || await getJSON(auditURL);
        timeline.replaceChildren(...rep.entries.map(timelineEntry));
        timeline.dataset.count = String(rep.entries.length);
        timeline.dataset.transitions = String(rep.entries.reduce((n, e) => n + (e.transitions ? e.transitions.length : 0), 0));
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
      try { await loadChart(id, chartBox, asOfQ); } catch (e) { showError(chartBox, e); }
    }

    async function evs() {
      try {
        const body = await getJSON('/api/streams/' + encodeURIComponent(stream) + '?limit=200');
        const shown = folded ? body.events.filter((e) => folded.has(e.revision)) : body.events;
        events.replaceChildren(...shown.map((e) => eventArticle(e, false, 3)));
        if (body.next !== undefined && body.next !== null) {
          events.append(h('p', {}, h('a', { href: streamHref(stream) }, 'All events of the stream')));
        }
      } catch (e) {
        if (is404(e)) events.replaceChildren(h('p', { class: 'muted' }, 'No events yet.'));
        else showError(events, e);
      }
    }

    async function parked() {
      if (asOf) { // the parked lanes are now's, not as of then
        parkedBox.hidden = true;
        parkedBox.dataset.lanes = '0';
        return;
      }
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

    async function all(preAudit, preSum) {
      const [rev] = await Promise.all([summary(preSum), audit(preAudit), chart(), evs(), parked()]);
      ready();
      await settle(rev);
    }

    // A new fact on this order redraws the page, once a burst has passed
    // (not as of a moment: the page shows then, not now).
    let timer = null;
    onTailEvent = (ev) => {
      if (ev.stream !== stream || asOf) return;
      clearTimeout(timer);
      timer = setTimeout(() => all(), 400);
    };
    // The first answers are drawn as they came; what failed is asked again.
    return all(first.status === 'fulfilled' ? first.value : undefined, firstSum.status === 'fulfilled' ? firstSum.value : undefined);
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
    setTitle('Parked');
    const tbody = h('tbody');
    const status = h('p', { class: 'muted small', id: 'parked-status', role: 'status' });
    view().replaceChildren(
      h('h1', {}, 'Parked'),
      h('p', { class: 'muted' }, 'Lanes of orders whose messages could not be built or were refused for good. ',
        'Their later messages wait behind them; every other order goes on. ',
        h('code', {}, 'ledger parked retry <orderId>… | --all'), ' publishes them again after a fix.'),
      h('table', { id: 'parked-list', class: 'grid' },
        h('thead', {}, h('tr', {}, th('Order'), th('Lane'), th('Reason'), th('Held message'), th('Since'), th('Retries', 'num'))),
        tbody),
      status);
    return (async () => {
      try {
        const body = await getJSON('/api/parked');
        for (const p of body.parked) {
          tbody.append(h('tr', { 'data-order': p.orderId, 'data-kind': p.kind },
            h('td', {}, h('a', { href: orderHref(p.orderId) }, h('code', {}, p.orderId))),
            h('td', {}, laneName(p.kind)),
            h('td', {}, h('span', { class: 'parked-reason' }, p.reason), p.detail ? h('div', { class: 'muted small detail' }, p.detail) : null),
            h('td', {}, '#' + p.fromRevision + ' ' + (p.message || '')),
            h('td', {}, when(p.parkedAt)),
            h('td', { class: 'num' }, p.retries)));
        }
        status.textContent = body.lanes === 0 ? 'Nothing is parked.' : `${body.lanes} lane(s) of ${body.orders} order(s)`;
      } catch (e) {
        if (e instanceof HttpError && e.status === 501) status.textContent = 'Parked lanes are not available in this process.';
        else showError(status, e);
      }
      ready();
    })();
  }

  // ---- dead letters ----

  function renderDeadLetters(params) {
    setTitle('Dead letters');
    const queue = params.get('queue') === 'skipped' ? 'skipped' : 'error';
    const counts = h('tbody');
    const list = h('tbody');
    const status = h('p', { class: 'muted small', id: 'dl-status', role: 'status' });
    const tab = (q, label) => h('a', { href: '/ui/deadletters?queue=' + q, class: 'tab', 'aria-current': q === queue ? 'page' : null, 'data-queue': q }, label);
    view().replaceChildren(
      h('h1', {}, 'Dead letters'),
      h('nav', { class: 'links', 'aria-label': 'Dead-letter queues' }, tab('error', 'Error queue'), tab('skipped', 'Skipped queue'),
        h('a', { href: '/api/deadletters?queue=' + queue }, 'JSON')),
      h('p', { class: 'muted' }, 'Inbound messages the ledger could not take, left in place. ',
        h('code', {}, 'ledger deadletters show <messageId>'), ' and ', h('code', {}, 'ledger deadletters redrive'), ' act on them.'),
      h('h2', {}, 'By reason'),
      h('table', { id: 'dl-counts', class: 'grid' },
        h('thead', {}, h('tr', {}, th('Reason'), th('Messages', 'num'))), counts),
      h('h2', {}, 'Messages'),
      h('table', { id: 'dl-list', class: 'grid' },
        h('thead', {}, h('tr', {}, th('Time'), th('Reason'), th('Type'), th('Message id'), th('Body'))),
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
              h('pre', { class: 'json dl-body', tabindex: '0' }, full),
              m.headers ? [h('h3', { class: 'sub' }, 'Headers'), h('pre', { class: 'json dl-headers', tabindex: '0' }, pretty(m.headers))] : null))));
        }
        const n = body.messages.length;
        status.textContent = n === 0 ? `The ${queue} queue is empty.` : `${n} message(s)${body.more ? ', more in the queue' : ''}`;
      } catch (e) {
        if (e instanceof HttpError && e.status === 501) status.textContent = 'Dead letters are not available in this process.';
        else showError(status, e);
      }
      ready();
    })();
  }

  // ---- books ----

  function booksHref(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
    const s = q.toString();
    return '/ui/books' + (s ? '?' + s : '');
  }

  function renderBooks(params) {
    setTitle('Books');
    const from = params.get('from') || '';
    const to = params.get('to') || '';
    const by = params.get('by') === 'month' ? 'month' : 'day';
    const asOf = (params.get('as_of') || '').trim();
    const query = { from, to, by: by === 'day' ? '' : by, as_of: asOf };
    const apiQ = new URLSearchParams(Object.entries(query).filter(([, v]) => v)).toString();
    const withQ = (path) => path + (apiQ ? '?' + apiQ : '');

    const fromIn = h('input', { id: 'books-from', name: 'from', type: 'date', value: from });
    const toIn = h('input', { id: 'books-to', name: 'to', type: 'date', value: to });
    const bySel = h('select', { id: 'books-by', name: 'by' },
      h('option', { value: 'day', selected: by === 'day' }, 'Day'), h('option', { value: 'month', selected: by === 'month' }, 'Month'));
    const asOfIn = h('input', { id: 'books-asof', name: 'as_of', value: asOf, maxlength: 40, spellcheck: 'false', autocomplete: 'off',
      placeholder: 'now, or e.g. 2025-11-20T15:04:05Z', 'aria-describedby': 'books-asof-help' });
    const form = h('form', { id: 'books-filter', class: 'filters', method: 'get', action: '/ui/books' },
      h('div', { class: 'field' }, h('label', { for: 'books-from' }, 'From'), fromIn),
      h('div', { class: 'field' }, h('label', { for: 'books-to' }, 'To'), toIn),
      h('div', { class: 'field' }, h('label', { for: 'books-by' }, 'By'), bySel),
      h('div', { class: 'field' }, h('label', { for: 'books-asof' }, 'As of'), asOfIn),
      h('div', { class: 'field' }, h('button', { class: 'button', type: 'submit', id: 'books-apply' }, 'Show the books')),
      (from || to || asOf || by !== 'day') ? h('div', { class: 'field' }, h('a', { href: '/ui/books', id: 'books-clear' }, 'All days, now')) : null,
      h('p', { id: 'books-asof-help', class: 'muted small asof-help' },
        'Days are UTC, both ends included. As of a moment: the facts recorded by then (a date alone is the end of that UTC day), folded with today\'s rules.'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      window.location.assign(booksHref({ from: fromIn.value, to: toIn.value, by: bySel.value === 'day' ? '' : bySel.value, as_of: asOfIn.value.trim() }));
    });

    const tbBox = h('div', { id: 'trial-balance-box' }, h('p', { class: 'muted' }, 'Loading…'));
    const chartBox = h('div', { id: 'books-chart', class: 'chart' }, h('p', { class: 'muted' }, 'Loading chart…'));
    const reportBox = h('div', { id: 'books-report-box' }, h('p', { class: 'muted' }, 'Loading…'));
    const when0 = asOf ? 'As of ' + asOf + ': the facts recorded by then.' : 'Now: the read model, which keeps the books with every fact.';
    view().replaceChildren(
      h('h1', {}, 'Books'),
      h('p', { class: 'links' },
        h('a', { href: withQ('/api/books/report') }, 'Report JSON'),
        h('a', { href: withQ('/api/books/report') + (apiQ ? '&' : '?') + 'format=csv', id: 'books-csv' }, 'Report CSV'),
        h('a', { href: '/api/books/trial-balance' + (asOf ? '?' + new URLSearchParams({ as_of: asOf }) : '') }, 'Trial balance JSON'),
        h('a', { href: withQ('/api/books/chart.svg') }, 'Chart SVG')),
      form,
      h('p', { class: 'muted small', id: 'books-when' }, when0, ` In ${info.currency.code}.`),
      h('section', { 'aria-labelledby': 'h-tb' }, h('h2', { id: 'h-tb' }, 'Trial balance'),
        h('p', { class: 'muted small' }, 'Every account of the chart with its balance on its side. The books balance when the debits equal the credits.'),
        tbBox),
      h('section', { 'aria-labelledby': 'h-periods' }, h('h2', { id: 'h-periods' }, 'By ' + by),
        h('p', { class: 'muted small' }, 'Bars: the money moved in each period, by kind; the line: its net (captured − refunded − charged back + reversed).'),
        chartBox),
      h('section', { 'aria-labelledby': 'h-report' }, h('h2', { id: 'h-report' }, 'Report'),
        h('p', { class: 'muted small' }, 'Orders: checked out in the period, by their status now. Money: moved in the period by those orders.'),
        reportBox));

    function booksError(box, e) {
      if (e instanceof HttpError && e.status === 409) {
        box.replaceChildren(h('p', { class: 'notice-inline', id: box.id + '-stale' }, e.message, '. The books as of a moment (fill in As of) fold the facts and need no replay.'));
      } else if (e instanceof HttpError && e.status === 501) {
        box.replaceChildren(h('p', { class: 'notice-inline' }, 'The books need the order index, which this process does not have. As of a moment they fold the facts instead.'));
      } else showError(box, e);
    }

    async function trialBalance() {
      let tb;
      try {
        tb = await getJSON('/api/books/trial-balance' + (asOf ? '?' + new URLSearchParams({ as_of: asOf }) : ''));
      } catch (e) { booksError(tbBox, e); return; }
      const side = (l, which) => {
        const v = which === 'debit' ? l.debit : l.credit;
        if (v) return money(v);
        return !l.debit && !l.credit && l.normal === which ? money(0) : '';
      };
      const ok = tb.balanced && tb.debits === tb.credits;
      fill(tbBox,
        h('table', { id: 'trial-balance', class: 'grid trial-balance', 'data-balanced': String(ok), 'data-orders': tb.orders },
          h('caption', { class: 'visually-hidden' }, 'Trial balance'),
          h('thead', {}, h('tr', {}, th('Code'), th('Account'), th('Normal side'), th('Debit', 'num'), th('Credit', 'num'))),
          h('tbody', {}, tb.accounts.map((l) => h('tr', { 'data-account': l.account },
            h('td', {}, l.code), h('th', { scope: 'row' }, l.title), h('td', { class: 'muted' }, l.normal),
            h('td', { class: 'num', 'data-field': 'debit', 'data-minor': l.debit }, side(l, 'debit')),
            h('td', { class: 'num', 'data-field': 'credit', 'data-minor': l.credit }, side(l, 'credit'))))),
          h('tfoot', {}, h('tr', { 'data-account': 'total' }, h('td', {}), h('th', { scope: 'row' }, 'Total'), h('td', {}),
            h('td', { class: 'num', 'data-field': 'debit', 'data-minor': tb.debits }, money(tb.debits)),
            h('td', { class: 'num', 'data-field': 'credit', 'data-minor': tb.credits }, money(tb.credits))))),
        h('p', { id: 'tb-status', class: ok ? 'good' : 'error', role: 'status' },
          ok ? `Balanced: debits equal credits over ${tb.orders} order${tb.orders === 1 ? '' : 's'}.`
            : `Not balanced: debits − credits = ${money(tb.debits - tb.credits)} ${tb.currency}.`));
    }

    async function chart() {
      try { await loadSVG(withQ('/api/books/chart.svg'), chartBox); } catch (e) { booksError(chartBox, e); }
    }

    async function report() {
      let rep;
      try {
        rep = await getJSON(withQ('/api/books/report'));
      } catch (e) { booksError(reportBox, e); return; }
      const cells = (r) => [h('td', { class: 'num', 'data-field': 'orders' }, r.orders),
        MONEY.map(([k]) => h('td', { class: 'num', 'data-field': k, 'data-minor': moneyField(r.money, k) }, money(moneyField(r.money, k))))];
      const body = h('tbody');
      for (const p of rep.periods) {
        const rows = rep.rows.filter((r) => r.period === p.period);
        rows.forEach((r, i) => body.append(h('tr', { 'data-period': r.period, 'data-status': r.status || 'none' },
          i === 0 ? h('th', { scope: 'row', rowspan: rows.length + (rows.length > 1 ? 1 : 0) }, r.period) : null,
          h('td', {}, statusChip(r.status)), cells(r))));
        if (rows.length > 1) {
          body.append(h('tr', { class: 'subtotal', 'data-period': p.period, 'data-status': 'all' }, h('td', { class: 'muted' }, 'all'), cells(p)));
        }
      }
      fill(reportBox, rep.rows.length === 0
        ? h('p', { id: 'books-empty' }, 'No order was checked out, and no money moved, in these days.')
        : h('table', { id: 'books-report', class: 'grid books-report', 'data-rows': rep.rows.length },
          h('caption', { class: 'visually-hidden' }, 'Orders and money by ' + rep.by + ' and status'),
          h('thead', {}, h('tr', {}, th(rep.by === 'month' ? 'Month' : 'Day'), th('Status'), th('Orders', 'num'), MONEY.map(([, label]) => th(label, 'num')))),
          body,
          h('tfoot', {}, h('tr', { 'data-period': 'total', 'data-status': 'all' }, h('th', { scope: 'row' }, 'Total'), h('td', { class: 'muted' }, 'all'), cells(rep.total)))));
    }

    async function draw() {
      await Promise.all([trialBalance(), chart(), report()]);
      ready();
    }

    // Now (not as of a moment), new facts change the books: draw again
    // once a burst has passed, at most every few seconds.
    let timer = null;
    let last = Date.now();
    onTailEvent = () => {
      if (asOf) return;
      clearTimeout(timer);
      timer = setTimeout(() => { last = Date.now(); draw(); }, Math.max(800, last + 3000 - Date.now()));
    };
    return draw();
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

  function page(name) {
    document.body.dataset.page = name;
    markNav(name);
  }

  async function route() {
    const path = window.location.pathname.replace(/\/+$/, '') || '/';
    const params = new URLSearchParams(window.location.search);
    let m;
    if (path === '/' || path === '/ui') {
      page('home');
      return renderOverview();
    }
    if (path === '/ui/streams') {
      page('streams');
      return renderStreams(params);
    }
    if (path === '/ui/orders') {
      page('orders');
      return renderOrders(params);
    }
    if (path === '/ui/parked') {
      page('parked');
      return renderParked();
    }
    if (path === '/ui/deadletters') {
      page('deadletters');
      return renderDeadLetters(params);
    }
    if (path === '/ui/books') {
      page('books');
      return renderBooks(params);
    }
    if ((m = /^\/ui\/orders\/([^/]+)$/.exec(path))) {
      const id = decodeURIComponent(m[1]).trim();
      page('order');
      document.getElementById('search-input').value = id.toLowerCase();
      if (UUID.test(id)) return renderOrder(id.toLowerCase(), params);
      if (isIdPrefix(id)) return renderPartialId(id.toLowerCase());
      setTitle('Not an order id');
      notice('bad-order-id', 'Not an order id',
        h('p', {}, h('code', {}, id), ' is not an order id. Order ids are UUIDs such as ', h('code', {}, '3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a10'), '.'),
        h('p', {}, h('a', { href: '/ui/orders' }, 'All orders')));
      return undefined;
    }
    if ((m = /^\/ui\/streams\/([^/]+)$/.exec(path))) {
      const name = decodeURIComponent(m[1]);
      page('stream');
      if (!STREAM.test(name)) {
        setTitle('Not a stream name');
        notice('bad-stream', 'Not a stream name', h('p', {}, h('code', {}, name), ' cannot name a stream: letters, digits and - _ . : @ $ only.'));
        return undefined;
      }
      return renderStream(name, params);
    }
    page('missing');
    setTitle('Not found');
    notice('not-found', 'Not found', h('p', {}, h('a', { href: '/' }, 'Back to the overview')));
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
