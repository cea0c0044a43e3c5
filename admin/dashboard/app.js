// The ampsbroker admin dashboard. It polls the admin tree relative to the
// page's own URL, so it works wherever the handler is mounted (a proxy's
// "/admin/" included), and draws everything with the DOM and inline SVG.
"use strict";

(() => {
  // Bounds of the polling period, which follows the handler's sampling
  // interval (statistics.interval, in ms).
  const POLL_MIN_MS = 250;
  const POLL_MAX_MS = 60000;
  // The chart shows at most this much history.
  const CHART_WINDOW_MS = 15 * 60 * 1000;
  // A client whose oldest queued message is this old (seconds) is marked
  // slow; AMPS operators alarm on queue_max_latency the same way.
  const SLOW_LATENCY_SECONDS = 5;
  // Chart geometry, in viewBox units.
  const CHART = { w: 640, h: 200, left: 48, right: 8, top: 10, bottom: 22 };
  const SVG_NS = "http://www.w3.org/2000/svg";

  // CHECK_PATH asks the admin server whether this user may run an action
  // (answer "true" or "false"), without running it.
  const CHECK_PATH = "amps/administrator/authorization/entitlement/transports/amps-admin/check?path=";

  const base = new URL(".", window.location.href);
  const $ = id => document.getElementById(id);
  let sortKey = "id", sortNum = true, sortAsc = true;
  let lastClients = [];
  let polls = 0;
  // What the admin server lets this user do; the buttons appear only then.
  const allowed = { disconnect: false, transport: false };

  const num = v => { const n = Number(v); return Number.isFinite(n) ? n : 0; };

  function fmtNum(v) {
    const n = num(v);
    if (Math.abs(n) >= 1e9) return (n / 1e9).toFixed(1) + "G";
    if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
    return Number.isInteger(n) || Math.abs(n) >= 100 ? String(Math.round(n)) : n.toFixed(1);
  }

  function fmtBytes(v) {
    let n = num(v);
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(1)) + " " + units[i];
  }

  function fmtSeconds(v) {
    const s = num(v);
    return s === 0 ? "–" : s < 1 ? (s * 1000).toFixed(0) + " ms" : s.toFixed(1) + " s";
  }

  // parseTime reads AMPS's sample time, 20111130T000010.000000Z.
  function parseTime(s) {
    const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?:\.(\d+))?Z$/.exec(s || "");
    if (!m) return NaN;
    const ms = m[7] ? Number((m[7] + "000").slice(0, 3)) : 0;
    return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], ms);
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  // fill replaces a table's body with rows, or one "none" row.
  function fill(table, rows, noneText) {
    const body = table.tBodies[0];
    body.replaceChildren();
    if (rows.length === 0) {
      const td = el("td", noneText, "none");
      td.colSpan = table.tHead.rows[0].cells.length;
      body.appendChild(el("tr")).appendChild(td);
      return;
    }
    for (const r of rows) body.appendChild(r);
  }

  // row makes a table row: a string cell is text, {text} a number
  // (right-aligned), and a Node (a button) is put in as it is.
  function row(cells, cls) {
    const tr = el("tr", undefined, cls);
    for (const c of cells) {
      if (c instanceof Node) {
        tr.appendChild(el("td", undefined, "actions")).appendChild(c);
        continue;
      }
      const isNum = typeof c === "object" && c !== null;
      tr.appendChild(el("td", isNum ? c.text : c, isNum ? "num" : undefined));
    }
    return tr;
  }

  // actionButton runs the admin action at path (relative, under
  // amps/administrator/) after the user confirms what it does.
  function actionButton(label, path, what) {
    const b = el("button", label, "action");
    b.type = "button";
    b.dataset.action = path;
    b.addEventListener("click", async () => {
      if (!window.confirm(what + "?")) return;
      b.disabled = true;
      try {
        const res = await fetch(new URL("amps/administrator/" + path, base), { method: "POST", cache: "no-store" });
        setStatus(what + (res.ok ? ": done" : ": refused, " + res.status + " " + (await res.text()).trim()), !res.ok);
      } catch (err) {
        setStatus(what + ": " + String((err && err.message) || err), true);
      }
    });
    return b;
  }

  // checkAction asks whether the user may run the action at path.
  async function checkAction(path) {
    try {
      const res = await fetch(new URL(CHECK_PATH + encodeURIComponent("/amps/administrator/" + path), base), { cache: "no-store" });
      return res.ok && (await res.text()).trim() === "true";
    } catch (err) {
      return false;
    }
  }
  const n = text => ({ text: text });

  function renderHeader(inst) {
    $("name").textContent = inst.name || "ampsbroker";
    $("version").textContent = inst.version ? "version " + inst.version : "";
    document.title = (inst.name || "ampsbroker") + " admin";
    const parts = ["up " + String(inst.uptime || "").replace(/\.\d+$/, "")];
    if (inst.description) parts.push(inst.description);
    if (inst.environment) parts.push(inst.environment);
    if (inst.statistics) parts.push("sampled every " + num(inst.statistics.interval) / 1000 + " s");
    if (inst.pid) parts.push("pid " + inst.pid);
    $("meta").textContent = parts.join(" · ");
  }

  function renderTiles(inst) {
    const x = inst.x_broker || {};
    const tiles = [
      ["connections", fmtNum(x.connections)],
      ["in-process clients", fmtNum(x.in_process_clients)],
      ["subscriptions", fmtNum(x.subscriptions)],
      ["messages in/s", fmtNum(x.messages_in_per_sec)],
      ["messages out/s", fmtNum(x.messages_out_per_sec)],
      ["bytes in/s", fmtBytes(Math.round(num(x.bytes_in_per_sec)))],
      ["bytes out/s", fmtBytes(Math.round(num(x.bytes_out_per_sec)))],
      ["slow-client disconnects", fmtNum(x.slow_client_disconnects)],
      ["auth failures", fmtNum(x.auth_failures)],
      ["not entitled", fmtNum(x.not_entitled)],
    ];
    const box = $("tiles");
    box.replaceChildren();
    for (const [label, value] of tiles) {
      const t = el("div", undefined, "tile");
      t.appendChild(el("b", value));
      t.appendChild(el("span", label));
      box.appendChild(t);
    }
  }

  function renderClients(clients) {
    lastClients = clients;
    const sorted = clients.slice().sort((a, b) => {
      const x = sortNum ? num(a[sortKey]) : String(a[sortKey] || "");
      const y = sortNum ? num(b[sortKey]) : String(b[sortKey] || "");
      const c = x < y ? -1 : x > y ? 1 : 0;
      return sortAsc ? c : -c;
    });
    const rows = sorted.map(c => {
      const tr = row([c.id, c.client_name, c.authenticated_id, c.x_transport, c.remote_address,
        n(c.subscription_count), n(fmtNum(c.messages_in)), n(fmtNum(c.messages_out)),
        n(fmtBytes(c.bytes_in)), n(fmtBytes(c.bytes_out)), n(fmtNum(c.messages_in_per_sec)),
        n(fmtNum(c.messages_out_per_sec)), n(fmtBytes(c.queued_bytes_out)), n(fmtSeconds(c.queue_max_latency)),
        allowed.disconnect ? actionButton("disconnect", "clients/" + encodeURIComponent(c.id) + "/disconnect",
          "Disconnect client " + c.id + " (" + (c.client_name || "no name") + ")") : ""],
      num(c.queue_max_latency) >= SLOW_LATENCY_SECONDS ? "slow" : undefined);
      tr.dataset.id = c.id;
      tr.dataset.transport = c.x_transport || "";
      return tr;
    });
    fill($("clients"), rows, "no connections");
    $("conn-count").textContent = "(" + clients.length + ")";
    for (const th of $("clients").tHead.rows[0].cells) {
      th.classList.toggle("sorted", th.dataset.key === sortKey);
      th.classList.toggle("asc", th.dataset.key === sortKey && sortAsc);
    }
  }

  function renderSlow(clients) {
    const lagging = clients.filter(c => num(c.queued_bytes_out) > 0 || num(c.queue_max_latency) > 0)
      .sort((a, b) => num(b.queue_max_latency) - num(a.queue_max_latency) || num(b.queued_bytes_out) - num(a.queued_bytes_out))
      .slice(0, 10)
      .map(c => row([c.id, c.client_name, n(fmtBytes(c.queued_bytes_out)), n(fmtSeconds(c.queue_max_latency))],
        num(c.queue_max_latency) >= SLOW_LATENCY_SECONDS ? "slow" : undefined));
    fill($("slow"), lagging, "no client has messages waiting");
  }

  function renderTopics(topics) {
    fill($("topics"), (topics || []).map(t => row([t.topic, t.message_type, n(fmtNum(t.messages_per_sec)),
      n(fmtNum(t.messages)), n(t.subscriptions), n(t.sow === "true" ? fmtNum(t.valid_keys) : "–")])),
    "no topics with messages, subscriptions or SOW records");
  }

  function renderSOW(sow) {
    fill($("sow"), (sow || []).map(s => row([s.topic, s.message_type, n(fmtNum(s.valid_keys)), n(fmtBytes(s.stored_bytes))])),
      "no SOW topics");
  }

  function renderTransports(ts) {
    fill($("transports"), (ts || []).map(t => {
      const on = t.is_enabled === "true", verb = on ? "disable" : "enable";
      return row([t.name, on ? "yes" : "no", t.x_inet_addr || "–", n(t.x_connections),
        allowed.transport ? actionButton(verb, "transports/" + encodeURIComponent(t.name) + "/" + verb,
          (on ? "Disable transport " + t.name + " and drop its connections" : "Enable transport " + t.name)) : ""],
      on ? undefined : "slow");
    }), "no transports");
  }

  // renderKV lists an object's fields, or says the feature is not
  // configured when the object is missing or empty.
  function renderKV(dl, obj) {
    dl.replaceChildren();
    const entries = obj && typeof obj === "object" ? Object.entries(obj) : [];
    if (entries.length === 0) {
      dl.appendChild(el("div", "not configured", "none"));
      dl.dataset.configured = "false";
      return;
    }
    dl.dataset.configured = "true";
    for (const [k, v] of entries) {
      dl.appendChild(el("dt", Array.isArray(obj) ? (v && v.id) || k : k));
      dl.appendChild(el("dd", typeof v === "object" ? summarize(v) : String(v)));
    }
  }

  function summarize(v) {
    if (Array.isArray(v)) return v.length + " item" + (v.length === 1 ? "" : "s");
    return Object.entries(v).filter(([k]) => k !== "id").map(([k, x]) => k + "=" + (typeof x === "object" ? "…" : x)).join(", ");
  }

  function gridLine(g, x1, y1, x2, y2) {
    const l = document.createElementNS(SVG_NS, "line");
    l.setAttribute("x1", x1); l.setAttribute("y1", y1); l.setAttribute("x2", x2); l.setAttribute("y2", y2);
    g.appendChild(l);
  }

  function gridText(g, x, y, text, anchor) {
    const t = document.createElementNS(SVG_NS, "text");
    t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("text-anchor", anchor);
    t.textContent = text;
    g.appendChild(t);
  }

  // niceMax rounds v up to 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (v <= 4) return 4; // whole numbers on the four grid lines
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function renderChart(samples) {
    const pts = samples.map(s => ({ t: parseTime(s.id), in: num(s.messages_in_per_sec), out: num(s.messages_out_per_sec) }))
      .filter(p => Number.isFinite(p.t));
    const svg = $("rate-chart");
    const g = $("chart-grid");
    g.replaceChildren();
    const newest = pts.length ? pts[pts.length - 1].t : Date.now();
    const shown = pts.filter(p => p.t >= newest - CHART_WINDOW_MS);
    const t0 = shown.length ? shown[0].t : newest;
    const span = Math.max(newest - t0, 1);
    const max = niceMax(Math.max(0, ...shown.map(p => Math.max(p.in, p.out))));
    const x = t => CHART.left + (t - t0) / span * (CHART.w - CHART.left - CHART.right);
    const y = v => CHART.h - CHART.bottom - v / max * (CHART.h - CHART.top - CHART.bottom);
    for (let i = 0; i <= 4; i++) {
      const v = max * i / 4;
      gridLine(g, CHART.left, y(v), CHART.w - CHART.right, y(v));
      gridText(g, CHART.left - 4, y(v) + 4, fmtNum(v), "end");
    }
    gridText(g, CHART.left, CHART.h - 6, shown.length ? "-" + Math.round(span / 1000) + " s" : "waiting for samples", "start");
    gridText(g, CHART.w - CHART.right, CHART.h - 6, "now", "end");
    const line = key => shown.map(p => x(p.t).toFixed(1) + "," + y(p[key]).toFixed(1)).join(" ");
    $("line-in").setAttribute("points", line("in"));
    $("line-out").setAttribute("points", line("out"));
    const last = shown.length ? shown[shown.length - 1] : { in: 0, out: 0 };
    svg.dataset.samples = String(shown.length);
    svg.dataset.lastIn = String(last.in);
    svg.dataset.lastOut = String(last.out);
    svg.dataset.max = String(max);
    $("rate-in").textContent = fmtNum(last.in);
    $("rate-out").textContent = fmtNum(last.out);
    $("chart-span").textContent = !shown.length ? "" :
      span < 120000 ? "(last " + Math.round(span / 1000) + " s)" : "(last " + Math.round(span / 60000) + " min)";
  }

  async function getJSON(path) {
    const res = await fetch(new URL(path, base), { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!res.ok) throw new Error(path + ": " + res.status + " " + (await res.text()).trim());
    return res.json();
  }

  function setStatus(text, isError) {
    const s = $("status");
    s.textContent = text;
    s.classList.toggle("error", isError);
  }

  async function poll() {
    let wait = 10000;
    try {
      const [doc, hist] = await Promise.all([getJSON("amps/instance.json"), getJSON("amps/instance/statistics/x_samples.json")]);
      const inst = doc.amps.instance;
      const samples = hist.amps.instance.statistics.x_samples || [];
      const clients = inst.clients || [], transports = inst.transports || [];
      // Asked of one client and one transport: an entitlement that
      // tells clients or transports apart still gets its answer when the
      // action runs.
      [allowed.disconnect, allowed.transport] = await Promise.all([
        clients.length ? checkAction("clients/" + encodeURIComponent(clients[0].id) + "/disconnect") : false,
        transports.length ? checkAction("transports/" + encodeURIComponent(transports[0].name) + "/disable") : false,
      ]);
      renderHeader(inst);
      renderTiles(inst);
      renderChart(samples);
      renderClients(clients);
      renderSlow(clients);
      renderTopics(inst.x_topics);
      renderSOW(inst.sow);
      renderTransports(transports);
      renderKV($("journal"), inst.transaction_log);
      renderKV($("cluster"), inst.x_cluster); // ours: AMPS replication is another design
      polls++;
      $("status").dataset.polls = String(polls);
      setStatus("updated " + new Date().toLocaleTimeString() + (inst.timestamp ? " · sample " + inst.timestamp : ""), false);
      wait = Math.min(POLL_MAX_MS, Math.max(POLL_MIN_MS, num(inst.statistics && inst.statistics.interval)));
    } catch (err) {
      const msg = String((err && err.message) || err);
      setStatus(/: 401 /.test(msg) ? "log in to see the statistics (" + msg + ")" : "cannot read the admin tree: " + msg, true);
    }
    setTimeout(poll, wait);
  }

  function init() {
    for (const th of $("clients").tHead.rows[0].cells) {
      if (!th.dataset.key) continue;
      th.addEventListener("click", () => {
        if (sortKey === th.dataset.key) sortAsc = !sortAsc;
        else { sortKey = th.dataset.key; sortNum = th.dataset.num === "1"; sortAsc = !sortNum; }
        renderClients(lastClients);
      });
    }
    poll();
  }

  init();
})();
