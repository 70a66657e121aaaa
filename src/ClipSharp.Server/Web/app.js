// The clip serve page: search by text, by an uploaded image or by a result ("more like this"), paging, and a
// zero-shot panel. Plain DOM code against the JSON API (/api/search, /api/classify, /api/thumbnail); no build step.
"use strict";

(() => {
  const PAGE = 24;
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const fmt = new Intl.NumberFormat("en");

  // What is being searched. kind: "text" | "similar" | "image"; page is 0-based.
  const state = { kind: null, text: "", similar: "", image: null, imageUrl: null, page: 0, index: "", dedup: false };
  let indexes = [];
  let requestSerial = 0;

  function setStatus(node, text, kind) {
    node.textContent = text;
    node.dataset.state = kind;
  }

  async function api(url, init) {
    const response = await fetch(url, init);
    let body = null;
    try { body = await response.json(); } catch { /* not JSON */ }
    if (!response.ok) throw new Error(body && body.error ? body.error : `HTTP ${response.status}`);
    return body;
  }

  // ---- URL <-> state -------------------------------------------------------------------------------------------
  function writeUrl(push) {
    const p = new URLSearchParams();
    if (state.kind === "text") p.set("q", state.text);
    if (state.kind === "similar") p.set("similar", state.similar);
    if (state.index && indexes.length > 1) p.set("index", state.index);
    if (state.page > 0 && state.kind !== "image") p.set("page", String(state.page + 1));
    if (state.dedup) p.set("dedup", "1");
    const url = p.toString() ? `/?${p}` : "/";
    if (url !== location.pathname + location.search) history[push ? "pushState" : "replaceState"](null, "", url);
  }

  function readUrl() {
    const p = new URLSearchParams(location.search);
    state.index = p.get("index") || (indexes[0] ? indexes[0].name : "");
    state.dedup = p.get("dedup") === "1";
    state.page = Math.max(0, (parseInt(p.get("page") || "1", 10) || 1) - 1);
    if (p.get("q")) { state.kind = "text"; state.text = p.get("q"); }
    else if (p.get("similar")) { state.kind = "similar"; state.similar = p.get("similar"); }
    else { state.kind = null; }
    $("q").value = state.kind === "text" ? state.text : "";
    $("dedup").checked = state.dedup;
    $("index-select").value = state.index;
  }

  // ---- search ---------------------------------------------------------------------------------------------------
  async function run(push) {
    if (!state.kind) { render(null); return; }
    writeUrl(push);
    showBanner();
    const serial = ++requestSerial;
    const offset = state.page * PAGE;
    setStatus($("status"), "Searching…", "loading");
    const started = performance.now();
    try {
      let result;
      if (state.kind === "image") {
        const form = new FormData();
        form.append("image", state.image, state.image.name || "upload");
        form.append("k", String(PAGE));
        form.append("offset", String(offset));
        form.append("dedup", String(state.dedup));
        form.append("index", state.index);
        result = await api("/api/search", { method: "POST", body: form });
      } else {
        const p = new URLSearchParams({ k: String(PAGE), offset: String(offset), dedup: String(state.dedup), index: state.index });
        p.set(state.kind === "text" ? "text" : "similar", state.kind === "text" ? state.text : state.similar);
        result = await api(`/api/search?${p}`);
      }
      if (serial !== requestSerial) return; // a newer search has started
      render(result, (performance.now() - started) / 1000);
    } catch (err) {
      if (serial !== requestSerial) return;
      $("results").replaceChildren();
      $("pager").hidden = true;
      setStatus($("status"), err.message, "error");
    }
  }

  function describe(result) {
    const q = result.query;
    if (q.kind === "text") return `“${q.text}”`;
    if (q.kind === "similar") return `images like ${q.path}`;
    return "your image";
  }

  function render(result, seconds) {
    const grid = $("results");
    if (!result) {
      grid.replaceChildren();
      $("pager").hidden = true;
      $("query-banner").hidden = true;
      setStatus($("status"), "Type a description and press Enter, upload an image, or drop one on the page.", "idle");
      return;
    }
    const cards = result.results.map(card);
    grid.replaceChildren(...cards);
    const first = result.offset + 1, last = result.offset + result.count;
    const what = describe(result);
    const took = seconds === undefined ? "" : ` · ${seconds.toFixed(2)} s`;
    setStatus($("status"), result.count === 0
      ? `No results for ${what}.`
      : `Results ${fmt.format(first)}–${fmt.format(last)} of ${fmt.format(result.total)} images, ranked by similarity to ${what}${result.dedup ? " (near-duplicates hidden)" : ""}${took}`,
      "done");
    $("pager").hidden = result.offset === 0 && !result.more;
    $("prev").disabled = result.offset === 0;
    $("next").disabled = !result.more;
    $("page-label").textContent = `Page ${state.page + 1}`;
  }

  function card(r) {
    const fig = el("figure", "card");
    fig.dataset.path = r.path;
    const link = el("a", "thumb");
    link.href = `/api/image?index=${encodeURIComponent(state.index)}&path=${encodeURIComponent(r.path)}`;
    link.target = "_blank";
    link.rel = "noopener";
    const img = el("img");
    img.src = r.thumbnail;
    img.alt = r.caption || r.path;
    img.loading = "lazy";
    img.addEventListener("error", () => link.classList.add("missing"));
    link.append(img, el("span", "score", r.score.toFixed(3)), el("span", "rank", `#${r.rank}`));
    const caption = el("figcaption");
    const path = el("span", "path", r.path);
    path.title = r.path;
    caption.append(path);
    if (r.caption) caption.append(el("p", "caption", r.caption));
    const actions = el("div", "actions");
    const more = el("button", "more-like", "More like this");
    more.type = "button";
    more.addEventListener("click", () => {
      Object.assign(state, { kind: "similar", similar: r.path, page: 0 });
      $("q").value = "";
      run(true);
    });
    actions.append(more);
    if (r.caption) {
      const byCaption = el("button", "by-caption", "Search by its caption");
      byCaption.type = "button";
      byCaption.addEventListener("click", () => {
        Object.assign(state, { kind: "text", text: r.caption, page: 0 });
        $("q").value = r.caption;
        run(true);
      });
      actions.append(byCaption);
    }
    caption.append(actions);
    fig.append(link, caption);
    return fig;
  }

  function showBanner() {
    const banner = $("query-banner");
    if (state.kind === "image") {
      banner.hidden = false;
      $("query-image").hidden = false;
      $("query-image").src = state.imageUrl;
      $("query-text").textContent = `Searching with ${state.image.name || "your image"}`;
    } else if (state.kind === "similar") {
      banner.hidden = false;
      $("query-image").hidden = false;
      $("query-image").src = `/api/thumbnail?index=${encodeURIComponent(state.index)}&path=${encodeURIComponent(state.similar)}`;
      $("query-text").textContent = `More like ${state.similar}`;
    } else {
      banner.hidden = true;
    }
  }

  function searchImage(file) {
    if (!file) return;
    if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
    Object.assign(state, { kind: "image", image: file, imageUrl: URL.createObjectURL(file), page: 0 });
    $("q").value = "";
    showView("search");
    run(true);
  }

  // ---- zero-shot ------------------------------------------------------------------------------------------------
  let zsImage = null;

  function setZeroShotImage(file) {
    if (!file) return;
    zsImage = file;
    const preview = $("zs-preview");
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    $("zs-hint").textContent = file.name || "image";
    $("zs-run").disabled = false;
    $("zs-bars").replaceChildren();
    setStatus($("zs-status"), "Ready: press Classify.", "idle");
  }

  async function classify() {
    if (!zsImage) return;
    const form = new FormData();
    form.append("image", zsImage, zsImage.name || "upload");
    form.append("labels", $("zs-labels").value);
    if ($("zs-template").value.trim()) form.append("template", $("zs-template").value.trim());
    form.append("index", state.index);
    setStatus($("zs-status"), "Classifying…", "loading");
    try {
      const result = await api("/api/classify", { method: "POST", body: form });
      const bars = result.labels.map((l) => {
        const li = el("li");
        const bar = el("div", "bar");
        const fill = el("div", "fill");
        fill.style.width = `${(l.probability * 100).toFixed(1)}%`;
        bar.append(fill);
        const label = el("span", "label", l.label);
        label.title = l.label;
        li.append(label, bar, el("span", "pct", `${(l.probability * 100).toFixed(1)} %`));
        return li;
      });
      $("zs-bars").replaceChildren(...bars);
      setStatus($("zs-status"), `Most likely: ${result.labels[0].label}${result.template ? ` (prompt “${result.template}”)` : ""}`, "done");
    } catch (err) {
      $("zs-bars").replaceChildren();
      setStatus($("zs-status"), err.message, "error");
    }
  }

  // ---- views, drag and drop -------------------------------------------------------------------------------------
  function showView(name) {
    const zs = name === "zeroshot";
    $("search-view").hidden = zs;
    $("zeroshot-view").hidden = !zs;
    $("tab-search").classList.toggle("active", !zs);
    $("tab-zeroshot").classList.toggle("active", zs);
    $("tab-search").setAttribute("aria-pressed", String(!zs));
    $("tab-zeroshot").setAttribute("aria-pressed", String(zs));
  }

  const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes("Files");
  const firstImage = (list) => Array.from(list || []).find((f) => !f.type || f.type.startsWith("image/"));

  function wireDrops() {
    const overlay = $("drop-overlay");
    let depth = 0;
    document.addEventListener("dragenter", (e) => {
      if (!hasFiles(e) || !$("zeroshot-view").hidden) return;
      depth++;
      overlay.hidden = false;
    });
    document.addEventListener("dragleave", () => { if (--depth <= 0) { depth = 0; overlay.hidden = true; } });
    document.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
    document.addEventListener("drop", (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth = 0;
      overlay.hidden = true;
      const file = firstImage(e.dataTransfer.files);
      if (!file) return;
      if ($("zeroshot-view").hidden) searchImage(file); else setZeroShotImage(file);
    });
    const zone = $("zs-drop");
    zone.addEventListener("dragover", () => zone.classList.add("over"));
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", () => zone.classList.remove("over"));
  }

  async function start() {
    try {
      indexes = await api("/api/indexes");
    } catch (err) {
      setStatus($("status"), `The server did not answer: ${err.message}`, "error");
      return;
    }
    const select = $("index-select");
    select.replaceChildren(...indexes.map((i) => {
      const o = el("option", null, `${i.name} (${fmt.format(i.images)} images)`);
      o.value = i.name;
      return o;
    }));
    select.hidden = indexes.length < 2;
    readUrl();

    $("search-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const text = $("q").value.trim();
      if (!text) return;
      Object.assign(state, { kind: "text", text, page: 0 });
      run(true);
    });
    $("image-input").addEventListener("change", (e) => { searchImage(e.target.files[0]); e.target.value = ""; });
    $("dedup").addEventListener("change", (e) => { state.dedup = e.target.checked; state.page = 0; run(false); });
    select.addEventListener("change", () => { state.index = select.value; state.page = 0; run(true); });
    $("prev").addEventListener("click", () => { if (state.page > 0) { state.page--; run(true); window.scrollTo(0, 0); } });
    $("next").addEventListener("click", () => { state.page++; run(true); window.scrollTo(0, 0); });
    $("clear-query").addEventListener("click", () => { state.kind = null; $("q").value = ""; writeUrl(true); render(null); });
    $("tab-search").addEventListener("click", () => showView("search"));
    $("tab-zeroshot").addEventListener("click", () => showView("zeroshot"));
    $("zs-input").addEventListener("change", (e) => { setZeroShotImage(e.target.files[0]); e.target.value = ""; });
    $("zs-run").addEventListener("click", classify);
    window.addEventListener("popstate", () => {
      readUrl();
      if (state.kind) run(false); else render(null);
    });
    wireDrops();
    document.body.dataset.ready = "true";
    if (state.kind) run(false);
  }

  start();
})();
