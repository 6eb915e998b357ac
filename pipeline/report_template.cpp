// The HTML run report's inline stylesheet and script (see report.hpp). Kept apart from
// report.cpp so the escaping and document code reads on its own.
//
// The script is plain ES2017 in strict mode and only reads what the server-free page holds:
// the rows' data-status / data-v attributes, the filter checkboxes and the URL hash. It must
// not throw for 0 rows or for a malformed hash (a user can type anything after '#'), and it
// logs nothing: the browser test treats any console line as a failure.
//
// Thread safety: constant data.
#include "pipeline/report.hpp"

namespace flowinfer {

const char* const kReportCss = R"CSS(
:root { color-scheme: light; --ok:#2ca02c; --failed:#d62728; --skipped:#7f7f7f;
        --interrupted:#ff7f0e; --pending:#1f77b4; --line:#ddd; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .3em; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .1em 1em; margin: .5em 0; }
dl.meta dt { color: #666; } dl.meta dd { margin: 0; word-break: break-all; }
.state { display: inline-block; padding: 0 .5em; border-radius: 3px; background: #eee; font-weight: 600; }
.state.running { background: #dbeafe; } .state.interrupted { background: #ffe4c4; }
#counts { margin: .8em 0; display: flex; flex-wrap: wrap; gap: .4em; align-items: center; }
#counts a.count { text-decoration: none; color: inherit; border: 1px solid var(--line);
                  border-radius: 3px; padding: .1em .6em; }
#counts a.count .n { font-weight: 700; }
#filters { margin: .5em 0 1em; display: flex; flex-wrap: wrap; gap: .8em; align-items: center; }
#filters label { cursor: pointer; }
table#slides { border-collapse: collapse; width: 100%; }
#slides th, #slides td { border-bottom: 1px solid var(--line); padding: .3em .5em; text-align: left; vertical-align: top; }
#slides thead th { position: sticky; top: 0; background: #f7f7f7; white-space: nowrap; }
#slides th[data-sort] { cursor: pointer; user-select: none; }
#slides th button { all: unset; cursor: pointer; }
#slides th[aria-sort="ascending"]::after { content: " \25B2"; }
#slides th[aria-sort="descending"]::after { content: " \25BC"; }
#slides td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
#slides td.name { word-break: break-all; min-width: 12em; }
#slides td.thumb img { display: block; max-width: 160px; max-height: 160px; }
#slides td.outputs a { display: inline-block; margin-right: .6em; }
#slides td.error { white-space: pre-wrap; word-break: break-word; max-width: 40em; color: #8b0000; }
#slides tr[hidden] { display: none !important; }
.badge { display: inline-block; padding: 0 .5em; border-radius: 3px; color: #fff; background: #999; }
.s-ok { background: var(--ok); } .s-failed { background: var(--failed); }
.s-skipped { background: var(--skipped); } .s-interrupted { background: var(--interrupted); }
.s-pending { background: var(--pending); }
p.empty { color: #666; font-style: italic; }
)CSS";

const char* const kReportJs = R"JS(
"use strict";
(function () {
  const table = document.getElementById("slides");
  if (!table || table.tBodies.length === 0) return;
  const tbody = table.tBodies[0];
  let rows = Array.prototype.slice.call(tbody.rows);
  const original = new Map(rows.map(function (r, i) { return [r, i]; }));
  const boxes = Array.prototype.slice.call(document.querySelectorAll("#filters input.filter"));
  const heads = table.tHead && table.tHead.rows.length ? Array.prototype.slice.call(table.tHead.rows[0].cells) : [];
  const shown = document.getElementById("shown");
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  let sortKey = -1;
  let sortDesc = false;

  // "#status=failed,interrupted&sort=4-desc"; parts that do not decode are ignored.
  function readHash() {
    const out = {};
    window.location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      if (!part) return;
      const i = part.indexOf("=");
      try {
        out[decodeURIComponent(i < 0 ? part : part.slice(0, i))] = decodeURIComponent(i < 0 ? "" : part.slice(i + 1));
      } catch (e) { /* malformed escape: ignore this part */ }
    });
    return out;
  }

  // replaceState, not location.hash: no history entry per click and no hashchange loop.
  function writeHash() {
    const on = boxes.filter(function (b) { return b.checked; }).map(function (b) { return encodeURIComponent(b.value); });
    const parts = [];
    if (on.length !== boxes.length) parts.push("status=" + on.join(","));
    if (sortKey >= 0) parts.push("sort=" + sortKey + (sortDesc ? "-desc" : ""));
    const url = window.location.pathname + window.location.search + (parts.length ? "#" + parts.join("&") : "");
    try { window.history.replaceState(null, "", url); } catch (e) { /* some file:// policies refuse */ }
  }

  function applyFilter() {
    const on = new Set(boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; }));
    let n = 0;
    for (let i = 0; i < rows.length; ++i) {
      const visible = on.has(rows[i].getAttribute("data-status"));
      if (rows[i].hidden === visible) rows[i].hidden = !visible;
      if (visible) ++n;
    }
    if (shown) shown.textContent = String(n);
  }

  function cellValue(r, k) {
    const c = r.cells[k];
    if (!c) return "";
    const v = c.getAttribute("data-v");
    return v === null ? c.textContent : v;
  }

  function sortBy(k, desc) {
    const th = heads[k];
    if (!th || !th.hasAttribute("data-sort")) return;
    const numeric = th.getAttribute("data-sort") === "num";
    const keyed = rows.map(function (r) {
      const v = cellValue(r, k);
      const num = parseFloat(v);
      return { r: r, i: original.get(r), v: numeric ? (isFinite(num) ? num : 0) : v };
    });
    keyed.sort(function (a, b) {
      let c = numeric ? a.v - b.v : collator.compare(a.v, b.v);
      if (desc) c = -c;
      return c || a.i - b.i;  // ties keep the run's order
    });
    const frag = document.createDocumentFragment();
    rows = keyed.map(function (e) { frag.appendChild(e.r); return e.r; });
    tbody.appendChild(frag);
    heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", desc ? "descending" : "ascending");
    sortKey = k;
    sortDesc = desc;
  }

  function fromHash() {
    const h = readHash();
    if (Object.prototype.hasOwnProperty.call(h, "status")) {
      const want = new Set(h.status.split(",").filter(function (s) { return s.length > 0; }));
      boxes.forEach(function (b) { b.checked = want.has(b.value); });
    } else {
      boxes.forEach(function (b) { b.checked = true; });
    }
    const m = /^(\d+)(-desc)?$/.exec(h.sort || "");
    if (m) sortBy(Number(m[1]), Boolean(m[2]));
    applyFilter();
  }

  heads.forEach(function (th, k) {
    if (!th.hasAttribute("data-sort")) return;
    th.addEventListener("click", function () {
      sortBy(k, sortKey === k ? !sortDesc : false);
      writeHash();
    });
  });
  boxes.forEach(function (b) {
    b.addEventListener("change", function () { applyFilter(); writeHash(); });
  });
  const all = document.getElementById("filter-all");
  if (all) all.addEventListener("click", function () {
    boxes.forEach(function (b) { b.checked = true; });
    applyFilter();
    writeHash();
  });
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
)JS";

}  // namespace flowinfer
