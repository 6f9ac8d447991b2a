// The review page: takes an API key and a SKU (from the form, or from the URL fragment
// `#key=...&sku=...`), reads the SKU's product, its whole decision history, the chain check,
// the merchant's automation state (running, frozen, tripped), the SKU's pending proposals and
// the overrides that cover it from the JSON API with that key, and draws the price chart
// (inline SVG, overrides as bands over their spans) and the decisions table. Pending proposals
// can be approved or rejected from the page with a key that may decide (approver or merchant). Plain JavaScript with no dependencies and no build step: the service embeds this file.
//
// Every piece of data reaches the page through textContent or setAttribute, never innerHTML:
// explanations, logs and tags are written by merchants' rules.
'use strict';

(() => {
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const KEY_STORAGE = 'pricing.review.key';
  const PAGE_SIZE = 1000;
  // 100 pages are 100 000 decisions of one SKU: past that the page says it stopped reading.
  const MAX_PAGES = 100;
  // Minor-unit exponents other than 2, as in service/src/domain/currency.rs; a unit test in
  // service/src/api/ui.rs checks these two lists against the service's own table.
  const ZERO_DECIMALS = 'BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF';
  const THREE_DECIMALS = 'BHD IQD JOD KWD LYD OMR TND';
  const OUTCOMES = new Set(['changed', 'kept', 'failed', 'held']);

  const zeroDecimals = new Set(ZERO_DECIMALS.split(' '));
  const threeDecimals = new Set(THREE_DECIMALS.split(' '));
  const $ = (id) => document.getElementById(id);

  // ---- money: integer minor units, formatted with integer (BigInt) arithmetic only ----

  function exponent(currency) {
    if (zeroDecimals.has(currency)) return 0;
    return threeDecimals.has(currency) ? 3 : 2;
  }

  function amount(minor, currency) {
    if (!Number.isSafeInteger(minor)) return '—';
    const exp = exponent(currency);
    let value = BigInt(minor);
    const sign = value < 0n ? '-' : '';
    if (value < 0n) value = -value;
    const unit = 10n ** BigInt(exp);
    const whole = (value / unit).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    if (exp === 0) return sign + whole;
    return `${sign}${whole}.${(value % unit).toString().padStart(exp, '0')}`;
  }

  function money(minor, currency) {
    return Number.isSafeInteger(minor) ? `${amount(minor, currency)} ${currency}` : '—';
  }

  // The margin floor exactly as the host computes it (pricing/guardrails.rs `scale`):
  // cost × (10 000 + bps) / 10 000, rounded half away from zero.
  function marginFloor(costMinor, bps) {
    if (!Number.isSafeInteger(costMinor) || !Number.isSafeInteger(bps)) return null;
    const product = BigInt(costMinor) * (10000n + BigInt(bps));
    const half = product >= 0n ? 5000n : -5000n;
    return Number((product + half) / 10000n);
  }

  // Basis points as a percentage, e.g. 1050 → "10.5 %", without floats.
  function percent(bps) {
    const whole = Math.trunc(bps / 100);
    const rest = Math.abs(bps % 100);
    if (rest === 0) return `${whole} %`;
    return `${whole}.${String(rest).padStart(2, '0').replace(/0$/, '')} %`;
  }

  // ---- DOM helpers ----

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
    }
    return node;
  }

  function fill(node, children) {
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  const el = (tag, attrs, ...children) => fill(setAttrs(document.createElement(tag), attrs), children);
  const svg = (tag, attrs, ...children) => fill(setAttrs(document.createElementNS(SVG_NS, tag), attrs), children);

  function utc(iso) {
    const ms = Date.parse(iso);
    return Number.isNaN(ms) ? String(iso) : new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
  }

  // ---- the API ----

  class ApiFailure extends Error {
    constructor(path, status, code, message, method = 'GET') {
      super(message);
      Object.assign(this, { path, status, code, method });
    }
  }

  async function api(path, key, method = 'GET') {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: { Authorization: `Bearer ${key}`, Accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (e) {
      throw new ApiFailure(path, 0, 'network', `the service could not be reached (${e.message})`);
    }
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!response.ok) {
      // The API's one error shape: {"error":{"code","message","details"}}.
      const error = body && typeof body === 'object' ? body.error : null;
      const code = (error && error.code) || `http_${response.status}`;
      const message = (error && error.message) || text.slice(0, 200) || response.statusText;
      throw new ApiFailure(path, response.status, code, message, method);
    }
    if (body === null) throw new ApiFailure(path, response.status, 'bad_response', 'the answer is not JSON');
    return body;
  }

  async function loadHistory(sku, key) {
    const items = [];
    let cursor = null;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (cursor !== null) query.set('cursor', String(cursor));
      const body = await api(`/v1/prices/${encodeURIComponent(sku)}/history?${query}`, key);
      items.push(...body.items);
      if (body.next_cursor === null || body.next_cursor === undefined) return { items, truncated: false };
      cursor = body.next_cursor;
    }
    return { items, truncated: true };
  }

  // ---- state and loading ----

  // A newer load makes an older one's late answers irrelevant.
  let generation = 0;

  function showErrors(failures) {
    const box = $('errors');
    box.replaceChildren();
    for (const f of failures) {
      const where = f.path ? `${f.method || 'GET'} ${f.path.split('?')[0]}` : 'the page';
      const status = f.status ? ` ${f.status}` : '';
      box.append(el('p', { class: 'error', 'data-code': f.code || 'error' },
        `${where}:${status} `, el('code', {}, f.code || 'error'), ` ${f.message}`));
    }
    box.hidden = failures.length === 0;
  }

  function reset(status) {
    $('status').textContent = status;
    showErrors([]);
    for (const id of ['product', 'chart-section', 'decisions-section', 'proposals-section']) $(id).hidden = true;
    $('proposals').tBodies[0].replaceChildren();
    $('chart').replaceChildren();
    $('legend').replaceChildren();
    $('decisions').tBodies[0].replaceChildren();
    setChain('unknown', 'chain not checked');
    setAutomation('unknown', 'automation not checked');
  }

  async function load(key, sku) {
    const mine = ++generation;
    document.body.dataset.state = 'loading';
    reset(`Loading ${sku} …`);
    const answers = await Promise.allSettled([
      api(`/v1/products/${encodeURIComponent(sku)}`, key),
      loadHistory(sku, key),
      api('/v1/audit/verify', key),
      api('/v1/automation', key),
      api(`/v1/proposals?${new URLSearchParams({ sku, limit: '1000' })}`, key),
      api('/v1/overrides?state=all&limit=1000', key),
    ]);
    if (mine !== generation) return;
    const [product, history, verification, automation, proposals, overrides] = answers;
    const failures = answers.filter((r) => r.status === 'rejected').map((r) => r.reason);
    try {
      renderChain(verification);
      renderAutomation(automation);
      const known = product.status === 'fulfilled' ? product.value : null;
      if (known) renderProduct(known);
      const currency = known ? known.currency : history.value?.items[0]?.currency;
      if (proposals.status === 'fulfilled') renderProposals(proposals.value.items, currency, key, sku);
      const covering = overrides.status === 'fulfilled' && known ? overrides.value.items.filter((o) => covers(o, known)) : [];
      if (history.status === 'fulfilled') {
        renderHistory(sku, history.value, known, currency, covering);
      } else {
        $('status').textContent = `The history of ${sku} could not be read.`;
      }
    } catch (e) {
      failures.push({ code: 'page_error', message: `the page could not draw the answer: ${e.message}` });
    }
    showErrors(failures);
    document.body.dataset.state = failures.length ? 'error' : 'ready';
  }

  // ---- chain badge ----

  function setChain(state, text, attrs) {
    const badge = $('chain');
    for (const name of ['data-records', 'data-seq']) badge.removeAttribute(name);
    setAttrs(badge, { 'data-chain': state, ...attrs });
    badge.className = `badge chain-${state}`;
    badge.textContent = text;
  }

  function renderChain(result) {
    if (result.status === 'rejected') {
      setChain('error', `chain not checked: ${result.reason.code}`);
      return;
    }
    const v = result.value;
    if (v.intact) {
      setChain('intact', `chain intact (${v.records} records)`, { 'data-records': v.records });
    } else {
      const broken = v.first_broken || {};
      setChain('broken', `chain broken at #${broken.seq}: ${broken.reason}`,
        { 'data-records': v.records, 'data-seq': broken.seq });
    }
  }

  // ---- automation badge ----

  function setAutomation(state, text) {
    const badge = $('automation');
    setAttrs(badge, { 'data-automation': state });
    badge.className = `badge automation-${state}`;
    badge.textContent = text;
  }

  function renderAutomation(result) {
    if (result.status === 'rejected') {
      setAutomation('error', `automation not checked: ${result.reason.code}`);
      return;
    }
    const a = result.value;
    if (a.state === 'frozen') {
      const why = a.frozen && a.frozen.reason ? `: ${a.frozen.reason}` : '';
      setAutomation('frozen', `automation frozen since ${utc(a.frozen.at)}${why}`);
    } else if (a.state === 'tripped') {
      const trip = a.breaker.trip || {};
      setAutomation('tripped', `breaker tripped at ${utc(a.breaker.tripped_at)} (${trip.limit}: ${trip.observed} over ${trip.threshold})`);
    } else {
      setAutomation('running', 'automation running');
    }
  }

  // ---- proposals: held changes waiting for a person ----

  function renderProposals(items, currency, key, sku) {
    const rows = items.map((p) => {
      const c = p.currency || currency;
      const decide = (verdict) => el('button', { type: 'button', class: `decide decide-${verdict}`, 'data-seq': p.seq,
        'data-verdict': verdict }, verdict);
      return el('tr', { class: 'proposal', 'data-seq': p.seq },
        el('td', { class: 'num' }, `#${p.seq}`),
        el('td', { class: 'time', title: p.created_at }, utc(p.created_at)),
        el('td', {}, p.reason),
        el('td', { class: 'money' }, `${money(p.price_minor, c)} → ${money(p.proposed_price_minor, c)}`),
        el('td', { class: 'time', title: p.expires_at }, utc(p.expires_at)),
        el('td', {}, decide('approve'), ' ', decide('reject')));
    });
    $('proposals').tBodies[0].replaceChildren(...rows);
    $('proposal-count').textContent = `(${items.length})`;
    $('proposals-section').hidden = items.length === 0;
    for (const button of $('proposals').querySelectorAll('button.decide')) {
      button.addEventListener('click', () => decideProposal(key, sku, button.dataset.seq, button.dataset.verdict));
    }
  }

  async function decideProposal(key, sku, seq, verdict) {
    for (const button of $('proposals').querySelectorAll('button.decide')) button.disabled = true;
    try {
      await api(`/v1/proposals/${encodeURIComponent(seq)}/${verdict}`, key, 'POST');
    } catch (failure) {
      showErrors([failure]);
      for (const button of $('proposals').querySelectorAll('button.decide')) button.disabled = false;
      return;
    }
    load(key, sku);
  }

  // ---- overrides ----

  // Whether an override covers the product (its SKU, or every attribute value it names).
  function covers(o, product) {
    if (o.sku) return o.sku === product.sku;
    const have = product.attributes || {};
    return Object.entries(o.attributes || {}).every(([k, v]) => JSON.stringify(have[k]) === JSON.stringify(v));
  }

  function overridePrice(o, currency) {
    if (o.price && o.price.fixed) return money(o.price.fixed.price_minor, o.price.fixed.currency || currency);
    if (o.price && o.price.percent_off) return `${percent(o.price.percent_off.off_bps)} off`;
    return '?';
  }

  // ---- product summary ----

  function renderProduct(p) {
    const c = p.currency;
    const g = p.guardrails || {};
    const facts = [
      ['currency', c],
      ['cost', money(p.cost_minor, c)],
      ['base price', money(p.base_price_minor, c)],
      ['price in force', p.price ? money(p.price.price_minor, c) : '—'],
      ['floor', g.floor_minor != null ? money(g.floor_minor, c) : null],
      ['minimum margin', g.min_margin_bps != null
        ? `${percent(g.min_margin_bps)} (${money(marginFloor(p.cost_minor, g.min_margin_bps), c)} at today's cost)` : null],
      ['MAP', g.map_minor != null ? money(g.map_minor, c) : null],
      ['ceiling', g.ceiling_minor != null ? money(g.ceiling_minor, c) : null],
      ['max step', g.max_step_bps != null ? percent(g.max_step_bps) : null],
      ['rounding', rounding(g.rounding, c)],
      ['min interval', g.min_interval_secs != null ? `${g.min_interval_secs} s` : null],
    ];
    $('product-title').textContent = `Product ${p.sku}`;
    $('product-facts').replaceChildren(...facts.filter(([, v]) => v !== null)
      .map(([name, value]) => el('div', {}, el('dt', {}, name), el('dd', {}, value))));
    $('product').hidden = false;
  }

  function rounding(r, currency) {
    if (!r) return null;
    if (r.mode === 'ending') return `ending in ${amount(r.ending_minor, currency)}`;
    if (r.mode === 'multiple') return `multiples of ${amount(r.step_minor, currency)}`;
    return r.mode;
  }

  // ---- history: chart and table ----

  function renderHistory(sku, history, product, currency, overrides) {
    const items = history.items;
    const more = history.truncated ? ` (the first ${items.length} only)` : '';
    $('status').textContent = items.length
      ? `${sku}: ${items.length} decisions${more}, newest first below.`
      : `${sku} has no decisions yet.`;
    $('decision-count').textContent = `(${items.length})`;
    renderTable(items, currency);
    $('decisions-section').hidden = false;
    // The chart runs left to right, oldest first.
    const oldestFirst = items.slice().sort((a, b) => a.seq - b.seq);
    drawChart(oldestFirst, product, currency, overrides || []);
    $('chart-section').hidden = false;
  }

  function recordOf(d) {
    return d.record && typeof d.record === 'object' ? d.record : {};
  }

  function renderTable(items, currency) {
    const rows = items.map((d) => {
      const r = recordOf(d);
      const c = d.currency || currency;
      const outcome = OUTCOMES.has(d.outcome) ? d.outcome : 'other';
      const asked = Number.isSafeInteger(r.rule_price_minor) && r.rule_price_minor !== d.new_price_minor
        ? el('span', { class: 'asked' }, `rule asked ${money(r.rule_price_minor, c)}`) : null;
      const rule = d.rule_version != null
        ? [`v${d.rule_version} `, d.rule_sha256 ? el('span', { class: 'sha', title: d.rule_sha256 }, d.rule_sha256.slice(0, 12)) : null]
        : '—';
      const tags = Array.isArray(r.tags) && r.tags.length ? el('span', { class: 'tags' }, r.tags.join(', ')) : null;
      const clips = Array.isArray(r.clips) ? r.clips.map((clip) => el('span', { class: 'clip' }, String(clip))) : [];
      const error = r.error ? `${r.error}${r.error_message ? `: ${r.error_message}` : ''}` : '';
      // The rule's own log (a panic's message and line land there), folded away.
      const log = typeof r.log === 'string' && r.log
        ? el('details', { class: 'log' }, el('summary', {}, 'log'), el('pre', {}, r.log)) : null;
      return el('tr', { class: `decision outcome-${outcome}`, 'data-seq': d.seq },
        el('td', { class: 'num' }, `#${d.seq}`),
        el('td', { class: 'time', title: d.created_at }, utc(d.created_at)),
        el('td', {}, d.trigger),
        el('td', {}, el('span', { class: 'outcome' }, d.outcome)),
        el('td', { class: 'money' }, `${money(d.old_price_minor, c)} → ${money(d.new_price_minor, c)}`, asked),
        el('td', {}, rule),
        el('td', {}, r.explanation || '', tags),
        el('td', {}, clips.length ? clips : '—'),
        el('td', { class: 'error' }, error, log));
    });
    $('decisions').tBodies[0].replaceChildren(...rows);
  }

  // The chart's geometry, in the SVG's own units (it scales to the page's width).
  const W = 1200;
  const H = 430;
  const M = { top: 18, right: 130, bottom: 48, left: 96 };

  function niceStep(span, target) {
    const raw = Math.max(span / target, 1);
    const magnitude = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((f) => f * magnitude).find((s) => s >= raw);
    return Math.max(1, Math.round(step));
  }

  function drawChart(decisions, product, currency, overrides) {
    const box = $('chart');
    if (!decisions.length) {
      box.replaceChildren(svg('svg', { id: 'price-chart', viewBox: `0 0 ${W} 120`, 'data-points': 0, 'data-decisions': 0 },
        svg('text', { x: W / 2, y: 60, 'text-anchor': 'middle', class: 'empty-chart' }, 'no decisions to draw')));
      return;
    }
    const guardrails = (product && product.guardrails) || {};
    const time = (d) => Date.parse(d.created_at);

    // Price in force after each decision; a decision without a new price keeps the one before.
    let inForce = decisions[0].old_price_minor;
    const prices = decisions.map((d) => {
      const price = Number.isSafeInteger(d.new_price_minor) ? d.new_price_minor : inForce;
      inForce = price;
      return { t: time(d), price, d };
    });

    // Competitor offers and cost as each rule evaluation saw them. Records without inputs (a
    // base-price change, not an evaluation) add a price point only.
    const competitors = new Map();
    const costs = [];
    let foreign = 0;
    for (const d of decisions) {
      const inputs = recordOf(d).inputs;
      if (!inputs || typeof inputs !== 'object') continue;
      const t = time(d);
      if (Number.isSafeInteger(inputs.cost_minor)) costs.push({ t, price: inputs.cost_minor });
      for (const offer of Array.isArray(inputs.competitors) ? inputs.competitors : []) {
        if (!Number.isSafeInteger(offer.price_minor)) continue;
        if (offer.currency && offer.currency !== currency) {
          foreign += 1;
          continue;
        }
        if (!competitors.has(offer.competitor)) competitors.set(offer.competitor, []);
        competitors.get(offer.competitor).push({ t, price: offer.price_minor, offer });
      }
    }
    const margins = guardrails.min_margin_bps != null
      ? costs.map((c) => ({ t: c.t, price: marginFloor(c.price, guardrails.min_margin_bps) })) : [];
    const bounds = [
      ['floor', 'floor', guardrails.floor_minor],
      ['map', 'MAP', guardrails.map_minor],
      ['ceiling', 'ceiling', guardrails.ceiling_minor],
    ].filter(([, , v]) => Number.isSafeInteger(v));

    // Domains. Floats from here on are pixel coordinates only; every label is formatted from
    // an integer amount.
    // The time axis spans the decisions (not up to now: a history that ended months ago
    // would be squeezed into a corner); the last price is drawn on to the right edge.
    const first = prices[0].t;
    const last = prices[prices.length - 1].t;
    const span = Math.max(last - first, 1000);
    const x0 = first - span * 0.05;
    const x1 = last + span * 0.08;
    const values = [
      ...prices.map((p) => p.price),
      ...costs.map((c) => c.price),
      ...margins.map((m) => m.price),
      ...[...competitors.values()].flat().map((o) => o.price),
      ...bounds.map(([, , v]) => v),
    ];
    if (Number.isSafeInteger(decisions[0].old_price_minor)) values.push(decisions[0].old_price_minor);
    let lo = Math.min(...values);
    let hi = Math.max(...values);
    const pad = hi > lo ? (hi - lo) * 0.08 : Math.max(1, hi * 0.05);
    lo = Math.max(0, lo - pad);
    hi += pad;
    const step = niceStep(hi - lo, 6);
    lo = Math.floor(lo / step) * step;
    hi = Math.ceil(hi / step) * step;

    const px = (t) => M.left + ((t - x0) / (x1 - x0)) * (W - M.left - M.right);
    const py = (v) => H - M.bottom - ((v - lo) / (hi - lo || 1)) * (H - M.top - M.bottom);
    const right = W - M.right;

    const root = svg('svg', {
      id: 'price-chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
      'aria-label': `Price of ${decisions[0].sku} over time`,
      'data-points': prices.length, 'data-decisions': decisions.length,
    });

    // Axes and grid: integer money ticks, and times.
    const grid = svg('g', { class: 'grid' });
    const yAxis = svg('g', { class: 'axis axis-y' });
    for (let v = lo; v <= hi; v += step) {
      grid.append(svg('line', { x1: M.left, x2: right, y1: py(v), y2: py(v) }));
      yAxis.append(svg('text', { x: M.left - 8, y: py(v) + 4, 'text-anchor': 'end' }, amount(v, currency)));
    }
    yAxis.append(svg('text', { x: 14, y: M.top + 4, 'text-anchor': 'start' }, currency));
    const xAxis = svg('g', { class: 'axis axis-x' },
      svg('line', { class: 'domain', x1: M.left, x2: right, y1: H - M.bottom, y2: H - M.bottom }));
    const withMs = x1 - x0 < 20000; // seconds alone would repeat the same label
    for (let i = 0; i <= 5; i += 1) {
      const t = x0 + ((x1 - x0) * i) / 5;
      const iso = new Date(t).toISOString();
      const [date, clock] = [iso.slice(0, 10), iso.slice(11, withMs ? 23 : 19)];
      const x = px(t);
      xAxis.append(svg('line', { x1: x, x2: x, y1: H - M.bottom, y2: H - M.bottom + 5 }));
      xAxis.append(svg('text', { x, y: H - M.bottom + 18, 'text-anchor': 'middle' }, clock));
      xAxis.append(svg('text', { x, y: H - M.bottom + 32, 'text-anchor': 'middle' }, date));
    }
    root.append(grid, yAxis, xAxis);

    // Guardrail bounds: the allowed band, and a line for each bound.
    const low = Math.max(...bounds.filter(([k]) => k !== 'ceiling').map(([, , v]) => v), -Infinity);
    const ceiling = guardrails.ceiling_minor;
    if (Number.isFinite(low) && Number.isSafeInteger(ceiling) && ceiling >= low) {
      root.append(svg('rect', { class: 'bound-band', x: M.left, width: right - M.left, y: py(ceiling), height: py(low) - py(ceiling) }));
    }
    for (const [kind, label, v] of bounds) {
      root.append(svg('line', { class: `bound-line bound-${kind}`, 'data-bound': kind, 'data-minor': v, x1: M.left, x2: right, y1: py(v), y2: py(v) },
        svg('title', {}, `${label}: ${money(v, currency)}`)));
    }
    // Labels at the right edge, top to bottom, pushed apart where bounds lie close together.
    let below = -Infinity;
    for (const [kind, label, v] of bounds.slice().sort((a, b) => b[2] - a[2])) {
      const y = Math.max(py(v) + 4, below + 13);
      below = y;
      root.append(svg('text', { class: `bound-label bound-${kind}`, x: right + 6, y }, `${label} ${amount(v, currency)}`));
    }

    // Overrides over their spans (clipped to the chart; an open end runs to its right edge).
    const bands = svg('g', { class: 'overrides' });
    for (const o of overrides) {
      const start = Math.max(Date.parse(o.starts_at), x0);
      const stops = [o.ends_at, o.cancelled_at].filter(Boolean).map(Date.parse);
      const stop = Math.min(stops.length ? Math.min(...stops) : x1, x1);
      if (!(stop > start)) continue;
      const span = `${utc(o.starts_at)} to ${o.ends_at || o.cancelled_at ? utc(o.cancelled_at || o.ends_at) : 'open'}`;
      bands.append(svg('rect', { class: `override-band override-${o.state}`, 'data-override': o.id, x: px(start),
        width: px(stop) - px(start), y: M.top, height: H - M.top - M.bottom },
      svg('title', {}, `override ${o.id} (${overridePrice(o, currency)}${o.force ? ', forced' : ''}): ${o.reason}, ${span}`)));
    }
    root.append(bands);

    // A step line through (time, value) points, held to the chart's right edge.
    const stepPath = (points, until) => {
      let d = `M${px(points[0].t).toFixed(1)},${py(points[0].price).toFixed(1)}`;
      for (const p of points.slice(1)) d += `H${px(p.t).toFixed(1)}V${py(p.price).toFixed(1)}`;
      return `${d}H${px(until).toFixed(1)}`;
    };

    if (costs.length) {
      root.append(svg('path', { class: 'cost-line', d: stepPath(costs, x1) }, svg('title', {}, 'cost')));
    }
    if (margins.length) {
      root.append(svg('path', { class: 'margin-line', d: stepPath(margins, x1) },
        svg('title', {}, `margin floor (${percent(guardrails.min_margin_bps)} over cost)`)));
    }

    const names = [...competitors.keys()].sort();
    names.forEach((name, i) => {
      const offers = competitors.get(name);
      const series = `series-${i % 6}`;
      const group = svg('g', { class: 'competitor', 'data-competitor': name });
      group.append(svg('path', { class: `competitor-line ${series}`, d: stepPath(offers, offers[offers.length - 1].t) }));
      for (const o of offers) {
        const usable = o.offer.in_stock && !o.offer.stale;
        const state = [o.offer.in_stock ? 'in stock' : 'out of stock', o.offer.stale ? 'stale' : null].filter(Boolean).join(', ');
        group.append(svg('circle', { class: `competitor-point ${series}${usable ? '' : ' unusable'}`, cx: px(o.t), cy: py(o.price), r: 3.5 },
          svg('title', {}, `${name}: ${money(o.price, currency)} (${state}, seen ${o.offer.age_seconds} s before the decision)`)));
      }
      root.append(group);
    });

    // The price in force: a dashed lead-in at the price before the first decision, then a
    // step line, and one point per decision.
    if (Number.isSafeInteger(decisions[0].old_price_minor)) {
      root.append(svg('path', { class: 'price-lead', d: `M${px(x0)},${py(decisions[0].old_price_minor)}H${px(first)}V${py(prices[0].price)}` }));
    }
    root.append(svg('path', { class: 'price-line', d: stepPath(prices, x1) }));
    const points = svg('g', { class: 'decision-points' });
    for (const p of prices) {
      const outcome = OUTCOMES.has(p.d.outcome) ? p.d.outcome : 'other';
      points.append(svg('circle', { class: `price-point outcome-${outcome}`, 'data-seq': p.d.seq, cx: px(p.t), cy: py(p.price), r: 5 },
        svg('title', {}, `#${p.d.seq} ${utc(p.d.created_at)} ${p.d.trigger}, ${p.d.outcome}: ${money(p.price, currency)}`)));
    }
    root.append(points);
    box.replaceChildren(root);
    drawLegend(new Set(decisions.map((d) => d.outcome)), names, costs.length > 0, margins.length > 0, bounds, foreign,
      bands.childElementCount > 0);
  }

  function drawLegend(outcomes, names, cost, margin, bounds, foreign, overridden) {
    const swatch = (...shapes) => svg('svg', { viewBox: '0 0 26 10', 'aria-hidden': 'true' }, ...shapes);
    const line = (cls) => swatch(svg('path', { class: cls, d: 'M1,5H25' }));
    const items = [
      ['price in force', swatch(svg('path', { class: 'price-line', d: 'M1,5H25' }), svg('circle', { class: 'legend-point outcome-changed', cx: 13, cy: 5, r: 3.5 }))],
      outcomes.has('kept') ? ['kept', swatch(svg('circle', { class: 'legend-point outcome-kept', cx: 13, cy: 5, r: 3.5 }))] : null,
      outcomes.has('failed') ? ['failed', swatch(svg('circle', { class: 'legend-point outcome-failed', cx: 13, cy: 5, r: 3.5 }))] : null,
      outcomes.has('held') ? ['held', swatch(svg('circle', { class: 'legend-point outcome-held', cx: 13, cy: 5, r: 3.5 }))] : null,
      overridden ? ['override', swatch(svg('rect', { class: 'override-band', x: 1, y: 0, width: 24, height: 10 }))] : null,
      ...names.map((name, i) => [`competitor ${name}`, line(`competitor-line series-${i % 6}`)]),
      cost ? ['cost', line('cost-line')] : null,
      margin ? ['margin floor', line('margin-line')] : null,
      ...bounds.map(([kind, label]) => [label, line(`bound-line bound-${kind}`)]),
    ].filter(Boolean);
    const legend = $('legend');
    legend.replaceChildren(...items.map(([label, sample]) => el('li', {}, sample, label)));
    if (foreign) legend.append(el('li', {}, `${foreign} offers in other currencies not drawn`));
  }

  // ---- the key, the SKU and the URL fragment ----

  function storage() {
    try {
      return window.sessionStorage;
    } catch {
      return null;
    }
  }

  // `#key=...&sku=...`, decoded by hand: URLSearchParams would turn a `+` into a space.
  function fragment() {
    const found = {};
    for (const part of location.hash.replace(/^#/, '').split('&')) {
      const at = part.indexOf('=');
      if (at <= 0) continue;
      try {
        found[part.slice(0, at)] = decodeURIComponent(part.slice(at + 1));
      } catch {
        // A malformed escape: ignore that part.
      }
    }
    return found;
  }

  function fromFragment() {
    const { key, sku } = fragment();
    const store = storage();
    if (key) {
      if (store) store.setItem(KEY_STORAGE, key);
      // The key leaves the address bar (and so the tab's history) at once; the SKU stays so
      // that a reload shows the same page. The key stays in this tab's session storage only.
      history.replaceState(null, '', `${location.pathname}${location.search}${sku ? `#sku=${encodeURIComponent(sku)}` : ''}`);
    }
    const storedKey = key || (store && store.getItem(KEY_STORAGE)) || '';
    $('key').value = storedKey;
    if (sku) $('sku').value = sku;
    if (storedKey && sku) load(storedKey, sku);
  }

  function start() {
    $('lookup').addEventListener('submit', (event) => {
      event.preventDefault();
      const key = $('key').value.trim();
      const sku = $('sku').value.trim();
      if (!key || !sku) return;
      const store = storage();
      if (store) store.setItem(KEY_STORAGE, key);
      const hash = `#sku=${encodeURIComponent(sku)}`;
      if (location.hash === hash) load(key, sku);
      else location.hash = hash; // the hashchange listener loads it
    });
    $('forget').addEventListener('click', () => {
      const store = storage();
      if (store) store.removeItem(KEY_STORAGE);
      $('key').value = '';
    });
    window.addEventListener('hashchange', fromFragment);
    fromFragment();
  }

  start();
})();
